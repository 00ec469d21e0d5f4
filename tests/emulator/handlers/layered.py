import layer_lib


def handler(event, context):
    return {"from_layer": layer_lib.VALUE, "file": layer_lib.__file__}
