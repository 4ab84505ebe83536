-- GCRA (generic cell rate algorithm) for one key of a shared rate limit
-- (see limit.go). Spends n requests that nodes already admitted and says
-- how long the key is now blocked. Redis's clock is the one clock, so
-- nodes' clocks may disagree.
-- KEYS: the key's theoretical arrival time (TAT, ms)
-- ARGV: emission interval (ms per request), tolerance (ms: interval x burst), n
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local interval, tolerance, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.max(1, math.ceil(tat - now)))
local over = tat - tolerance - now
if over > 0 then
  return math.ceil(over)
end
return 0
