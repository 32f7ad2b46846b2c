-- wrk script for the small-request benchmark: POST /llm with a ~100-byte JSON body.
-- done() prints one machine-readable line (prefix WRKJSON) that bench/run.ts parses;
-- latencies are in microseconds.
wrk.method = "POST"
wrk.body = '{"model":"llm","prompt":"Write one short sentence about the oceans.","max_tokens":16,"stream":false}'
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"body_bytes":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    string.len(wrk.body)))
end
