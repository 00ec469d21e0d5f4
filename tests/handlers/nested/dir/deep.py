def handler(event, context):
    return {"where": "nested/dir/deep"}
