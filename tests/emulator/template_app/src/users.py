import json

from shared_util import shout


def handler(event, context):
    user_id = (event.get("pathParameters") or {}).get("id", "nobody")
    result = {"user": shout(user_id), "function": context.function_name}
    if "httpMethod" not in event:
        return result
    # Through the REST API: a proxy integration response that shows the event it got.
    if user_id == "boom":
        raise ValueError("no such user")
    result["event"] = event
    return {"statusCode": 200, "headers": {"x-user": user_id}, "body": json.dumps(result)}
