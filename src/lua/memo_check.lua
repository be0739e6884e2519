-- The memolock's one atomic look: the value if it exists, else the lock if it is free.
-- KEYS[1] the value, KEYS[2] the lock
-- ARGV[1] our token, ARGV[2] the lock ttl in ms, or '0' to only look for the value and never
--         take the lock (a waiter past its deadline must not take over work it cannot finish)
-- Returns {1, value} when the value exists, {2} when the lock is (now) ours, else {0}: someone
-- else holds the lock, or ARGV[2] is '0'. Matching the token makes a re-run after a lost reply
-- recognise the lock it took.
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if ARGV[2] == '0' then return {0} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
   or redis.call('GET', KEYS[2]) == ARGV[1] then
  return {2}
end
return {0}
