-- wrk script for the paced latency check (bench/latency.sh): POST /llm as in post.lua, but each
-- connection waits DELAY_MS (env) after a response before sending the next request, so the offered
-- rate is about connections × 1000 / (DELAY_MS + latency) instead of "as fast as possible".
-- done() prints the same WRKJSON line as post.lua.
wrk.method = "POST"
wrk.body = '{"model":"llm","prompt":"Write one short sentence about the oceans.","max_tokens":16,"stream":false}'
wrk.headers["Content-Type"] = "application/json"

local pause = tonumber(os.getenv("DELAY_MS") or "0")

function delay()
  return pause
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
