-- wrk script: purchases by buyers that carry JWTs, one distinct token per
-- buyer, read from a file (bench/tokens prints them). Each thread walks the
-- list from its own offset, so every buyer comes back again and again, as
-- real buyers of a sold-out drop retry.
-- Usage: wrk -s bench/jwt.lua URL -- SALE_ID TOKEN_FILE
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
  tokens = {}
  for line in io.lines(args[2]) do
    tokens[#tokens + 1] = "Bearer " .. line
  end
  counter = (tid * 7919) % #tokens
  body = '{"quantity":1}'
end

function request()
  counter = counter % #tokens + 1
  return wrk.format("POST", path, {
    ["Authorization"] = tokens[counter],
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("p99_us=%d\n", latency:percentile(99)))
end
