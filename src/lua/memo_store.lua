-- The memolock winner stores its value, wakes the waiters and releases its lock, atomically.
-- The value is stored even if the lease was lost meanwhile: it is still a good value.
-- KEYS[1] the value, KEYS[2] the lock
-- ARGV[1] the value, ARGV[2] its ttl in ms or '' (no expiry), ARGV[3] the channel the value
--         is published on, ARGV[4] our token
-- Returns 1 if the lock was still ours (and is now deleted), else 0.
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
