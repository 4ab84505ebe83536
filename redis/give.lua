-- Second half of a transfer (stock.go Rebalance, RepairTransfers): the
-- recipient takes the units once per transfer id, if they belong to its
-- epoch, and counts the units it ever took ('got'; see Stock.Unbalanced)
-- from a donor that counted them given.
-- KEYS: recipient meta, recipient received transfers. ARGV: id, n, now_ms,
-- the epoch of the donor's state when it gave the units ('': not recorded,
-- a transfer an older version started).
-- Returns 1 if applied now, 0 if it was already, or the state is missing
-- (a rebuild recomputes every bucket from PostgreSQL anyway), or the
-- recipient holds a newer epoch: a new epoch's install (a rebuild, an
-- operator's change) split PostgreSQL's free stock anew over every bucket,
-- the units given by the old epoch's donor included, so adding them again
-- would offer units PostgreSQL does not have. 2 if the recipient holds an
-- older epoch: it is still to be replaced by the install of the donor's,
-- and the donor keeps its record for the installer or the leader to
-- complete once the recipient has it (RepairTransfers).
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return 0
end
if ARGV[4] and ARGV[4] ~= '' and tonumber(epoch) ~= tonumber(ARGV[4]) then
  if tonumber(epoch) < tonumber(ARGV[4]) then
    return 2
  end
  return 0
end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'rem', tonumber(ARGV[2]))
-- Counted only with the donor's epoch: a donor of the version before it
-- (a cluster upgraded node by node) did not count the units it gave, and
-- counting them taken would have the leader rebuild a sound sale.
if ARGV[4] and ARGV[4] ~= '' then
  redis.call('HINCRBY', KEYS[1], 'got', tonumber(ARGV[2]))
end
return 1
