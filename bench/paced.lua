-- wrk script for the paced latency check (bench/latency.sh): POST /llm as in post.lua, but each
-- connection waits a pause after a response before sending its next request, so the offered rate
-- is about connections × 1000 / (mean pause + latency) instead of "as fast as possible".
--
--   DELAY_MS  mean pause in ms (may be fractional)
--   THINK     exp (default): pauses drawn from an exponential distribution with that mean, so the
--             connections are independent clients and arrivals are close to Poisson;
--             fixed: every pause is DELAY_MS, so connections that start together stay in step
--             and their requests arrive in bursts of up to `connections`.
--
-- wrk schedules a pause in whole milliseconds (it truncates what delay() returns), so each pause
-- is rounded up or down at random in proportion to its fraction: the mean stays DELAY_MS.
-- done() prints the same WRKJSON line as post.lua.
wrk.method = "POST"
wrk.body = '{"model":"llm","prompt":"Write one short sentence about the oceans.","max_tokens":16,"stream":false}'
wrk.headers["Content-Type"] = "application/json"

local mean = tonumber(os.getenv("DELAY_MS") or "0")
local exp = (os.getenv("THINK") or "exp") ~= "fixed"
math.randomseed(os.time())

function delay()
  local d = mean
  if exp then
    d = -mean * math.log(1 - math.random())
  end
  local whole = math.floor(d)
  if math.random() < d - whole then
    whole = whole + 1
  end
  return whole
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
