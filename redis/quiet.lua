-- Tell whether one bucket's live state gives the leader anything to do
-- (see stock.go Quiet).
-- KEYS: meta, users, keys, orders, pending, outgoing transfers, received
-- transfers
-- Returns {-1} if the state is missing or lost a sentinel (as inspect.lua),
-- else {epoch, units reserved so far, units taken in transfers, units
-- given, busy, units remaining, transfers}: busy is 1 while a reservation
-- waits to be confirmed or a transfer's record is kept, transfers 1 while a
-- transfer's record is kept.
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'tot', 'got', 'gave', 'rem')
if not meta[1] or not meta[2] then
  return {-1}
end
for i = 2, 4 do
  if redis.call('HEXISTS', KEYS[i], '!') == 0 then
    return {-1}
  end
end
local busy, transfers = 0, 0
for i = 5, 7 do
  if not redis.call('ZSCORE', KEYS[i], '!') then
    return {-1}
  end
  if redis.call('ZCARD', KEYS[i]) > 1 then
    busy = 1
    if i > 5 then
      transfers = 1
    end
  end
end
return {tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3] or '0'), tonumber(meta[4] or '0'), busy,
  tonumber(meta[5] or '0'), transfers}
