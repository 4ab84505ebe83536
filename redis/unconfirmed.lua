-- The batches of a bucket's pending set reserved at least age_ms ago by
-- Redis's clock, the one reserve.lua scores them with, so the nodes'
-- clocks never enter the comparison (see Stock.Unconfirmed).
-- KEYS: pending
-- ARGV: age_ms ('' for every batch, whatever its age), limit
-- Exclusive: the set's sentinel '!' (install.lua) is scored +inf.
local max = '(+inf'
if ARGV[1] ~= '' then
  local t = redis.call('TIME')
  max = t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[1])
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', max, 'LIMIT', 0, ARGV[2])
