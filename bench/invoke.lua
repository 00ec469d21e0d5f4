-- wrk script for the emulator benchmark: POST a small JSON event to the Invoke API, and print
-- one JSON line of results that bench/emulator.py parses.
-- Usage: wrk -t1 -c1 -d5s -s bench/invoke.lua http://127.0.0.1:9000/2015-03-31/functions/function/invocations

wrk.method = "POST"
wrk.body = '{"a":1}'
wrk.headers["Content-Type"] = "application/json"

local non_200 = 0
local function_errors = 0

-- One counter table per wrk thread; summed in done() through the thread objects.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status ~= 200 then
    non_200 = non_200 + 1
  end
  if headers["X-Amz-Function-Error"] ~= nil or headers["x-amz-function-error"] ~= nil then
    function_errors = function_errors + 1
  end
end

function done(summary, latency, requests)
  local bad, ferr = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non_200") or 0)
    ferr = ferr + (thread:get("function_errors") or 0)
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "socket_errors": %d, ' ..
    '"non_200": %d, "function_errors": %d, "latency_mean_us": %.2f, "latency_stdev_us": %.2f, ' ..
    '"latency_p50_us": %d, "latency_p90_us": %d, "latency_p99_us": %d, "latency_max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    bad, ferr, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
