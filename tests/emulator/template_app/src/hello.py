import json
import os


def handler(event, context):
    result = {
        "message": f"{os.environ['GREETING']}, {event.get('name', 'World')}!",
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "env": {k: os.environ.get(k) for k in ("STAGE", "USERS_ARN", "SIZE", "WHERE")},
    }
    if "requestContext" not in event:
        return result
    # Through the HTTP API: an HTTP response that shows the event it got.
    if "fail" in (event.get("queryStringParameters") or {}):
        raise RuntimeError("asked to fail")
    result["event"] = event
    return {
        "statusCode": 200,
        # The API's CORS settings replace this one.
        "headers": {"content-type": "application/json", "access-control-allow-origin": "*"},
        "body": json.dumps(result),
    }
