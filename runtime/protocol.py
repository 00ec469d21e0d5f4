"""Lambda's wire protocol, each fact defined once: paths, header names, status meanings, limits.

The runtime, the emulator, the benchmark's Runtime API server and the tests all read these
names from here, so a path or a header cannot drift between the client and its peers. This
module imports nothing: it is part of every cold start.

Header names are in their canonical spelling (``Lambda-Runtime-Aws-Request-Id``); HTTP header
names are case-insensitive, and the runtime's parser lowers them, so ``.lower()`` of a name here
is the key in a parsed header dict (the ``*_KEY`` constants spell those out for the hot path).
"""

from __future__ import annotations

# --- Runtime API (``http://$AWS_LAMBDA_RUNTIME_API``) ------------------------------------------
RUNTIME_API_VERSION = "2018-06-01"
RUNTIME_BASE = f"/{RUNTIME_API_VERSION}/runtime"
NEXT_PATH = RUNTIME_BASE + "/invocation/next"
INVOCATION_PREFIX = RUNTIME_BASE + "/invocation/"  # + {request_id} + "/response" | "/error"
INIT_ERROR_PATH = RUNTIME_BASE + "/init/error"
RESTORE_NEXT_PATH = RUNTIME_BASE + "/restore/next"
RESTORE_ERROR_PATH = RUNTIME_BASE + "/restore/error"
RESPONSE_SUFFIX = "/response"
ERROR_SUFFIX = "/error"

EXTENSION_API_VERSION = "2020-01-01"
EXTENSION_REGISTER_PATH = f"/{EXTENSION_API_VERSION}/extension/register"
EXTENSION_NEXT_PATH = f"/{EXTENSION_API_VERSION}/extension/event/next"
EXTENSION_NAME_HEADER = "Lambda-Extension-Name"
EXTENSION_ID_HEADER = "Lambda-Extension-Identifier"


def response_path(request_id: str) -> str:
    return INVOCATION_PREFIX + request_id + RESPONSE_SUFFIX


def error_path(request_id: str) -> str:
    return INVOCATION_PREFIX + request_id + ERROR_SUFFIX


# Headers on the /next answer.
REQUEST_ID_HEADER = "Lambda-Runtime-Aws-Request-Id"
DEADLINE_HEADER = "Lambda-Runtime-Deadline-Ms"
FUNCTION_ARN_HEADER = "Lambda-Runtime-Invoked-Function-Arn"
TRACE_ID_HEADER = "Lambda-Runtime-Trace-Id"
CLIENT_CONTEXT_HEADER = "Lambda-Runtime-Client-Context"
COGNITO_IDENTITY_HEADER = "Lambda-Runtime-Cognito-Identity"
TENANT_ID_HEADER = "Lambda-Runtime-Aws-Tenant-Id"
# A per-attempt token, echoed on that invoke's /response and /error (omitted when absent).
INVOCATION_ID_HEADER = "Lambda-Runtime-Invocation-Id"

REQUEST_ID_KEY = REQUEST_ID_HEADER.lower()
DEADLINE_KEY = DEADLINE_HEADER.lower()
FUNCTION_ARN_KEY = FUNCTION_ARN_HEADER.lower()
TRACE_ID_KEY = TRACE_ID_HEADER.lower()
CLIENT_CONTEXT_KEY = CLIENT_CONTEXT_HEADER.lower()
COGNITO_IDENTITY_KEY = COGNITO_IDENTITY_HEADER.lower()
TENANT_ID_KEY = TENANT_ID_HEADER.lower()
INVOCATION_ID_KEY = INVOCATION_ID_HEADER.lower()

# Headers on error posts (and trailers of a streamed response that failed).
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"  # base64 of the error JSON
XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"

# Response streaming.
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
RESPONSE_MODE_STREAMING = "streaming"
STREAM_TRAILERS = f"{ERROR_TYPE_HEADER}, {ERROR_BODY_TRAILER}"
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
HTTP_PRELUDE_SEPARATOR = b"\x00" * 8
STREAM_DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Status meanings on Runtime API calls (see the facts file, section 1).
STATUS_OK = 200
STATUS_ACCEPTED = 202  # /response, /error, /init/error accepted
STATUS_BAD_REQUEST = 400  # unknown or already-answered request id, bad response mode
STATUS_FORBIDDEN = 403  # call made in the wrong state
STATUS_GONE = 410  # a late post for an invoke that already timed out: not fatal
STATUS_TOO_LARGE = 413  # Lambda refused the payload; the caller gets Function.ResponseSizeTooLarge
STATUS_FATAL = 500  # the environment is broken: exit promptly

# --- Limits ------------------------------------------------------------------------------------
MIB = 1024 * 1024
# Lambda's "6 MB" is 6 MiB plus a small allowance it accepts on top.
MAX_RESPONSE_BYTES = 6 * MIB + 100
MAX_SYNC_PAYLOAD = MAX_RESPONSE_BYTES
MAX_EVENT_PAYLOAD = 1 * MIB  # asynchronous (Event) invokes
MAX_STREAMED_RESPONSE = 200 * MIB
STREAM_FULL_SPEED_BYTES = 6 * MIB  # then Lambda throttles a stream to 2 MiB/s
STREAM_THROTTLED_BYTES_PER_S = 2 * MIB
MAX_CLIENT_CONTEXT = 3583  # bytes of the base64 X-Amz-Client-Context header
XRAY_CAUSE_LIMIT = 64 * 1024
# A function's code plus its layers, unzipped (CreateFunction refuses more).
MAX_UNZIPPED_CODE_BYTES = 250 * MIB

# --- Invoke API (what the emulator serves) ----------------------------------------------------
INVOKE_API_VERSION = "2015-03-31"
STREAM_INVOKE_API_VERSION = "2021-11-15"
FUNCTIONS_PREFIX = f"/{INVOKE_API_VERSION}/functions/"
STREAM_FUNCTIONS_PREFIX = f"/{STREAM_INVOKE_API_VERSION}/functions/"
RIE_FUNCTION_NAME = "function"  # RIE's path: /2015-03-31/functions/function/invocations


def invoke_path(function_name: str) -> str:
    return f"{FUNCTIONS_PREFIX}{function_name}/invocations"


def stream_invoke_path(function_name: str) -> str:
    return f"{STREAM_FUNCTIONS_PREFIX}{function_name}/response-streaming-invocations"

# Invoke API headers, as callers (boto3, the AWS CLI, RIE scripts) send and read them.
INVOCATION_TYPE_HEADER = "X-Amz-Invocation-Type"
INVOCATION_TYPE_REQUEST_RESPONSE = "RequestResponse"
INVOCATION_TYPE_EVENT = "Event"
INVOCATION_TYPE_DRY_RUN = "DryRun"
LOG_TYPE_HEADER = "X-Amz-Log-Type"  # "Tail" asks for LOG_RESULT_HEADER
LOG_TYPE_TAIL = "Tail"
INVOKE_CLIENT_CONTEXT_HEADER = "X-Amz-Client-Context"  # base64 JSON, up to MAX_CLIENT_CONTEXT
INVOKE_TRACE_ID_HEADER = "X-Amzn-Trace-Id"
INVOKE_TENANT_ID_HEADER = "X-Amz-Tenant-Id"
AMZN_REQUEST_ID_HEADER = "X-Amzn-RequestId"
EXECUTED_VERSION_HEADER = "X-Amz-Executed-Version"
FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"  # "Unhandled" when the function failed
LOG_RESULT_HEADER = "X-Amz-Log-Result"  # base64 of the invoke's last 4 KB of log
AMZN_ERROR_TYPE_HEADER = "x-amzn-ErrorType"  # the Invoke API's own errors
