-- Check one bucket's live state (see stock.go Inspect).
-- KEYS: meta, users, keys, orders, pending, outgoing transfers, received
-- transfers
-- Returns {-1} if the state is missing, {-2} if one of its keys lost its
-- sentinel (evicted or deleted), else {epoch, units reserved so far}.
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'tot')
if not meta[1] then
  return {-1}
end
if not meta[2] then
  return {-2}
end
for i = 2, 4 do
  if redis.call('HEXISTS', KEYS[i], '!') == 0 then
    return {-2}
  end
end
for i = 5, 7 do
  if not redis.call('ZSCORE', KEYS[i], '!') then
    return {-2}
  end
end
return {tonumber(meta[1]), tonumber(meta[2])}
