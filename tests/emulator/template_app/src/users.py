from shared_util import shout


def handler(event, context):
    user_id = (event.get("pathParameters") or {}).get("id", "nobody")
    return {"user": shout(user_id), "function": context.function_name}
