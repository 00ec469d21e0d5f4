"""Server-sent events from a Lambda function, streamed as they are produced.

Deploy it behind a function URL with InvokeMode RESPONSE_STREAM, or run it locally:

    lambda-runtime serve app.handler --task-root examples/streaming --http-port 8080
    curl -N 'http://127.0.0.1:8080/countdown?from=5'

The first item yielded describes the HTTP response (status, headers, cookies); every item
after it is sent to the client the moment it is yielded.
"""

import json
import time

from runtime import HttpResponse


def handler(event, context):
    params = event.get("queryStringParameters") or {}
    try:
        start = int(params.get("from", "3"))
        pause = float(params.get("pause", "0.5"))
    except ValueError:
        yield HttpResponse(400, {"content-type": "application/json"})
        yield json.dumps({"message": "from must be an integer and pause a number"})
        return
    yield HttpResponse(
        200,
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"},
        cookies=[f"last-countdown={start}; Path=/"],
    )
    for remaining in range(start, 0, -1):
        yield f"event: tick\ndata: {json.dumps({'remaining': remaining, 'at': time.time()})}\n\n"
        time.sleep(pause)
    yield "event: done\ndata: {}\n\n"
