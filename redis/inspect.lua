-- Check one bucket's live state (see stock.go Inspect).
-- KEYS: meta, users, keys, orders, pending
-- Returns {-1} if the state is missing, {-2} if one of its hashes lost its
-- sentinel (evicted or deleted), else {epoch, units reserved so far}.
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'tot')
if not meta[1] then
  return {-1}
end
if not meta[2] or redis.call('HEXISTS', KEYS[2], '!') == 0 or redis.call('HEXISTS', KEYS[3], '!') == 0
    or redis.call('HEXISTS', KEYS[4], '!') == 0 or not redis.call('ZSCORE', KEYS[5], '!') then
  return {-2}
end
return {tonumber(meta[1]), tonumber(meta[2])}
