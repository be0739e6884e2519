-- Extend a lease we hold (lock extend, memolock renew).
-- KEYS[1] the lock
-- ARGV[1] our token, ARGV[2] the new ttl in ms
-- Returns 1 if the lock was ours and now expires in ARGV[2] ms, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
