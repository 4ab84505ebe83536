-- Mark a sale's live state of one bucket ended for every batch (see
-- Stock.MarkEnded): its end goes as install.lua writes one a change ended.
-- KEYS: meta
-- ARGV: epoch (the state the change saw), ended_for_all
-- Returns 1 if marked (or the bucket holds a newer epoch: installed from a
-- newer row, which knows of the change), 0 if the bucket holds no state or
-- an older epoch (an install under way will put in place a state that does
-- not know of it).
local e = tonumber(redis.call('HGET', KEYS[1], 'epoch'))
local want = tonumber(ARGV[1])
if not e or e < want then
  return 0
end
if e == want then
  redis.call('HSET', KEYS[1], 'ends', ARGV[2])
end
return 1
