"""boto3 against the emulator, exactly as users point it at Lambda with endpoint_url."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from botocore.exceptions import ClientError


def test_boto3_invoke_success_error_and_tail(emulator, lambda_client):
    fn = emulator("app.echo", function_name="boto-fn")
    client = lambda_client(fn.url)
    response = client.invoke(
        FunctionName="boto-fn", Payload=json.dumps({"via": "boto3"}), LogType="Tail"
    )
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    body = json.loads(response["Payload"].read())
    assert body["event"] == {"via": "boto3"}
    assert body["request_id"] == response["ResponseMetadata"]["RequestId"]
    log = base64.b64decode(response["LogResult"]).decode()
    assert "echo got {'via': 'boto3'}" in log and "REPORT RequestId" in log

    # (Payload streams are read and closed so boto3 lets go of their connections.)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:boto-fn"
    by_arn = client.invoke(FunctionName=arn, Payload=b"{}")
    assert by_arn["StatusCode"] == 200 and by_arn["Payload"].read()
    by_arn["Payload"].close()
    event = client.invoke(FunctionName="boto-fn", InvocationType="Event", Payload=b"{}")
    assert event["StatusCode"] == 202 and event["Payload"].read() == b""
    event["Payload"].close()
    dry = client.invoke(FunctionName="boto-fn", InvocationType="DryRun")
    assert dry["StatusCode"] == 204 and dry["Payload"].read() == b""
    dry["Payload"].close()
    with pytest.raises(ClientError) as missing:
        client.invoke(FunctionName="nope", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_boto3_function_error(make, lambda_client):
    fn = make("app.fail")
    response = lambda_client(fn.url).invoke(FunctionName="function", Payload=b'{"why": "b3"}')
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorMessage"] == "boom: b3"


def test_boto3_throttled(make, lambda_client):
    fn = make("app.sleep", concurrency=1)
    client = lambda_client(fn.url)
    results = []
    slow = threading.Thread(target=lambda: results.append(fn.invoke({"seconds": 1})))
    slow.start()
    try:
        deadline = time.monotonic() + 5
        while fn.stats()["busy"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(client.exceptions.TooManyRequestsException):
            client.invoke(FunctionName="function", Payload=b"{}")
    finally:
        slow.join()
    assert results[0].ok
