"""A small function to run in the local emulator (see run_local.py and test_app.py)."""

import json
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    name = event.get("name")
    if not name:
        raise ValueError("event has no 'name'")
    logger.info("greeting %s", name)
    return {
        "statusCode": 200,
        "body": json.dumps({"message": f"Hello, {name}!", "request_id": context.aws_request_id}),
    }
