-- First half of a transfer of units between buckets (stock.go Rebalance):
-- the donor gives up to n units and records the transfer, with the epoch
-- of the state the units belong to, and counts the units it ever gave
-- ('gave'; see Stock.Unbalanced).
-- The record is "<id>@<epoch>|<units>": the epoch is part of the id that
-- both halves use, so that a leader of the previous version, which reads
-- "<to>:<id>|<units>", still completes and forgets this version's records
-- while a cluster is upgraded node by node.
-- KEYS: donor meta, donor outgoing transfers. ARGV: transfer id, n, now_ms.
-- Returns {units given, the donor's epoch} ({0, 0} if the donor has none
-- or its state is missing).
local meta = redis.call('HMGET', KEYS[1], 'rem', 'epoch')
local rem = tonumber(meta[1] or '-1')
if rem <= 0 or not meta[2] then
  return {0, 0}
end
local n = math.min(tonumber(ARGV[2]), rem)
redis.call('HINCRBY', KEYS[1], 'rem', -n)
redis.call('HINCRBY', KEYS[1], 'gave', n)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1] .. '@' .. meta[2] .. '|' .. n)
return {n, tonumber(meta[2])}
