import os


def handler(event, context):
    return {
        "message": f"{os.environ['GREETING']}, {event.get('name', 'World')}!",
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "env": {k: os.environ.get(k) for k in ("STAGE", "USERS_ARN", "SIZE", "WHERE")},
    }
