"""A minimal custom runtime that answers one invoke, then hangs instead of asking for the next."""

import http.client
import os
import time

from runtime import protocol

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
conn.request("GET", protocol.NEXT_PATH)
response = conn.getresponse()
event = response.read()
request_id = response.getheader(protocol.REQUEST_ID_HEADER)
conn.request("POST", protocol.response_path(request_id), body=event)
conn.getresponse().read()
print("answered one invoke, now hanging", flush=True)
time.sleep(3600)
