-- wrk script: refresh-token rotations. Each connection spends one refresh token per
-- request and keeps the new one from the answer for its next request, so every request
-- presents a fresh, unspent token (a chain per session, like a device refreshing).
-- usage: wrk ... -s refresh.lua URL -- TOKENS_FILE THREADS
-- TOKENS_FILE holds one refresh token per line, more than one per connection (spares:
-- wrk may build a connection's first request twice when its first write would block, and
-- the token of the request never sent is lost); thread i takes lines i, i+THREADS, ...
-- Answers without a new refresh token count as bad; "starved" counts requests sent when a
-- thread had no token left (they get INVALID_TOKEN and are not counted as rotations).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local QUERY = "mutation R($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken } }"

function init(args)
  local n = tonumber(args[2])
  tokens = {}
  local i = 0
  for line in io.lines(args[1]) do
    if line ~= "" then
      if i % n == id then table.insert(tokens, line) end
      i = i + 1
    end
  end
  ok, bad, starved = 0, 0, 0
  sample = ""
end

function request()
  local t = table.remove(tokens)
  if t == nil then
    starved = starved + 1  -- a chain broke earlier: this request is answered INVALID_TOKEN
    t = "starved"
  end
  local body = '{"query":"' .. QUERY .. '","variables":{"t":"' .. t .. '"}}'
  return wrk.format("POST", "/graphql", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  local t = body:match('"refreshToken":%s*"([^"]+)"')
  if status == 200 and t then
    ok = ok + 1
    table.insert(tokens, t)
  else
    bad = bad + 1
    if sample == "" then sample = tostring(status) .. " " .. body:sub(1, 200) end
  end
end

function done(summary, latency, requests)
  local ok_total, bad_total, starved_total, samples = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    bad_total = bad_total + t:get("bad")
    starved_total = starved_total + t:get("starved")
    local s = t:get("sample")
    if s ~= "" and samples == "" then samples = s end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"ok":%d,"bad":%d,"starved":%d,"socket_errors":%d,"sample":%q}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, ok_total, bad_total, starved_total,
    e.connect + e.read + e.write + e.timeout, samples))
end
