"""The emulator's Python API, and boto3 pointed at it, in one script.

Run: python examples/emulator/run_local.py
"""

import json
from pathlib import Path

import boto3
import botocore.config

from runtime.emulator import Emulator

HERE = Path(__file__).parent

with Emulator("app.handler", task_root=HERE, function_name="greeter") as fn:
    result = fn.invoke({"name": "Python API"})
    print("payload:", result.payload["body"])
    print("report:", result.report.text() if result.report else None)

    client = boto3.client(
        "lambda",
        endpoint_url=fn.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    response = client.invoke(FunctionName="greeter", Payload=json.dumps({"name": "boto3"}))
    print("boto3:", json.loads(response["Payload"].read())["body"])
    client.close()
