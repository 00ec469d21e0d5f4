def handler(event, context):
    return {"where": "pkg.sub.mod"}
