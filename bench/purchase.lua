-- wrk script: every request is a purchase by a new buyer with its own
-- Idempotency-Key, so a reserve-heavy run reserves on every request.
-- Usage: wrk -s bench/purchase.lua URL -- SALE_ID
local threads = {}
local n = 0

function setup(thread)
  n = n + 1
  thread:set("tid", n)
  table.insert(threads, thread)
end

function init(args)
  sale = args[1] or "bench"
  path = "/v1/sales/" .. sale .. "/purchases"
  counter = 0
  math.randomseed(os.time() * 100 + tid)
  prefix = "w" .. tid .. "r" .. math.random(1, 1000000000) .. "-"
  body = '{"quantity":1}'
end

function request()
  counter = counter + 1
  local u = prefix .. counter
  return wrk.format("POST", path, {
    ["X-User-ID"] = u,
    ["Idempotency-Key"] = u,
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("p99_us=%d\n", latency:percentile(99)))
end
