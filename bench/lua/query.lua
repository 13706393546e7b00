-- wrk script: POST one GraphQL request again and again, and count wrong answers.
-- usage: wrk ... -s query.lua URL -- BODY_FILE [TOKEN_FILE] [close]
-- "close": a new connection for every request (Connection: close).
-- Every response is checked: a non-200 status or a body with "errors" counts as bad,
-- so a fast error answer can never pass for throughput.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return (data:gsub("%s+$", ""))
end

function init(args)
  wrk.method = "POST"
  wrk.body = slurp(args[1])
  wrk.headers["Content-Type"] = "application/json"
  if args[2] and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. slurp(args[2])
  end
  if args[3] == "close" then
    wrk.headers["Connection"] = "close"
  end
  bad = 0
  sample = ""
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then
    bad = bad + 1
    if sample == "" then sample = tostring(status) .. " " .. body:sub(1, 200) end
  end
end

function done(summary, latency, requests)
  local bad_total, samples = 0, ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    local s = t:get("sample")
    if s ~= "" and samples == "" then samples = s end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"bad":%d,"socket_errors":%d,"sample":%q}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, bad_total,
    e.connect + e.read + e.write + e.timeout, samples))
end
