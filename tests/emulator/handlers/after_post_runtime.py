"""A minimal custom runtime that keeps working after posting each response, as the event says.

Event keys: ``sleep`` (seconds to wait after the post), ``print`` (a line to write after the
post), ``exit`` (exit with this status after the post instead of asking for more work).
"""

import http.client
import json
import os
import sys
import time

from runtime import protocol

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", protocol.NEXT_PATH)
    response = conn.getresponse()
    body = response.read()
    request_id = response.getheader(protocol.REQUEST_ID_HEADER)
    event = json.loads(body)
    print("handling", request_id, flush=True)
    conn.request("POST", protocol.response_path(request_id), body=body)
    conn.getresponse().read()
    time.sleep(event.get("sleep", 0))
    if "print" in event:
        print(event["print"], flush=True)
    if "exit" in event:
        sys.exit(event["exit"])
