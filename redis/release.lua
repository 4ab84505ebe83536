-- Return the units of orders that left the reserved state (see stock.go).
-- KEYS: meta, users, orders. ARGV: order ids.
-- Returns the remaining stock, or -1 when the live state is missing or
-- lost part of itself (a hash without its sentinel).
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[2], '!') == 0
    or redis.call('HEXISTS', KEYS[3], '!') == 0 then
  return -1
end
local back = 0
for i = 1, #ARGV do
  local rec = redis.call('HGET', KEYS[3], ARGV[i])
  if rec then
    local sep = string.find(rec, '|', 1, true)
    local user = string.sub(rec, 1, sep - 1)
    local q = tonumber(string.sub(rec, sep + 1))
    redis.call('HDEL', KEYS[3], ARGV[i])
    if redis.call('HINCRBY', KEYS[2], user, -q) <= 0 then
      redis.call('HDEL', KEYS[2], user)
    end
    back = back + q
  end
end
return redis.call('HINCRBY', KEYS[1], 'rem', back)
