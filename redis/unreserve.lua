-- Take back what reserve.lua reserved in one bucket for a batch whose
-- round failed in another (reserve.go): refused with {-2} (its hold is not
-- the batch's: ErrStaleHold, "nothing was reserved", decided again), {-1}
-- (no state), or of another epoch (an install under way), so none of its
-- orders will ever be committed.
-- KEYS: meta, users, keys, orders, pending.
-- ARGV: the pending member (the bucket's new ids joined by ','), then per
-- order: id, user, quantity, user .. '\n' .. key ('' without a key).
-- An order the bucket no longer holds (a new epoch installed meanwhile)
-- is skipped.
local back = 0
for i = 2, #ARGV, 4 do
  local id, user, q, uk = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if redis.call('HDEL', KEYS[4], id) == 1 then
    if redis.call('HINCRBY', KEYS[2], user, -q) <= 0 then
      redis.call('HDEL', KEYS[2], user)
    end
    if uk ~= '' then
      local rec = redis.call('HGET', KEYS[3], uk)
      if rec and string.sub(rec, 1, #id + 1) == id .. '|' then
        redis.call('HDEL', KEYS[3], uk)
      end
    end
    back = back + q
  end
end
redis.call('ZREM', KEYS[5], ARGV[1])
if back > 0 then
  redis.call('HINCRBY', KEYS[1], 'rem', back)
  redis.call('HINCRBY', KEYS[1], 'tot', -back)
end
return back
