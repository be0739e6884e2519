-- Compare-and-delete: the lock and the memolock release a lock they hold. No hand-off.
-- KEYS[1] the lock
-- ARGV[1] our token
-- ARGV[2] channel to publish KEYS[1] on once deleted, or '' for none (the memolock's channel
--         carries values only)
-- Returns 1 if the lock was ours and is now deleted, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], KEYS[1]) end
  return 1
end
return 0
