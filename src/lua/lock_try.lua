-- The fair lock, try_acquire with fencing: the pip-services SET NX PX, and the grant counted on
-- the fencing counter in the same step. (Without fencing, try_acquire sends the SET alone.)
-- KEYS[1] the lock, KEYS[2] the fencing counter
-- ARGV[1] our token, ARGV[2] the lock ttl in ms
-- Returns the grant's fencing number, or 0 when the lock is taken (our own token counts as
-- ours: a retry after a lost reply recognises its grant).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return tonumber(redis.call('GET', KEYS[2]) or '1')
end
return 0
