"""A minimal custom runtime that answers one invoke, then hangs instead of asking for the next."""

import http.client
import os
import time

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
conn.request("GET", "/2018-06-01/runtime/invocation/next")
response = conn.getresponse()
event = response.read()
request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=event)
conn.getresponse().read()
print("answered one invoke, now hanging", flush=True)
time.sleep(3600)
