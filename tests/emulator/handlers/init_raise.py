print("initializing and about to raise")
raise RuntimeError("init exploded")


def handler(event, context):
    return "unreachable"
