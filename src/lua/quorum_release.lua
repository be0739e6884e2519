-- The quorum lock, release on one node: compare-and-delete, then announce it to the waiters of
-- any process subscribed on this node (they try again at once instead of after their pause).
-- KEYS[1] the lock
-- ARGV[1] our token, ARGV[2] the key's release channel (redkit:lock-freed:{K})
-- Returns 1 if the key held our token (deleted), else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
