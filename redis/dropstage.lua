-- Drop a staging key (stages.go) that no install will swap in: any of an
-- archived sale (ARGV[2] "1"); of another sale, one whose epoch is not
-- recorded in the bucket's set of installs (an install of this version
-- records its own before it stages anything) and not newer than the
-- bucket's state (an older version's install under way would be).
-- KEYS: the staging key, the bucket's record of installs, its meta
-- ARGV: the key's epoch, archived
-- Returns 1 if the key was dropped.
if ARGV[2] ~= '1' then
  if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
    return 0
  end
  local cur = redis.call('HGET', KEYS[3], 'epoch')
  if not cur or tonumber(cur) < tonumber(ARGV[1]) then
    return 0
  end
end
-- UNLINK: the key holds an entry per buyer, key or held order of the
-- sale, and DEL freed them on Redis's one thread, stalling every sale.
return redis.call('UNLINK', KEYS[1])
