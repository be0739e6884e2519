-- The fair lock, leave: a waiter gives up its place in the queue (see lock_acquire.lua).
-- KEYS[1] the lock, KEYS[2] the waiter queue (list), KEYS[3] the waiter heartbeats (hash)
-- ARGV[1] our token
-- Returns 1 if the lock was handed to us meanwhile (we hold it now), else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
redis.call('LREM', KEYS[2], 1, ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 0
