-- The fair lock, release: a direct hand-off to the first live waiter (see lock_acquire.lua),
-- announced on that waiter's own inbox channel only, so one release wakes one process.
-- PUBLISH (or SPUBLISH) answers how many subscribers heard it: none means the waiter's process is gone (its
-- connection, and so its subscription, closed with it), and the lock goes to the next one.
-- KEYS[1] the lock, KEYS[2] the waiter queue (list), KEYS[3] the waiter heartbeats (hash),
-- KEYS[4] the fencing counter
-- ARGV[1] our token, ARGV[2] '1' to count grants on the fencing counter, ARGV[3] yield to
--         pollers after this many ms of hand-offs ('0': never), ARGV[4] how long queued
--         waiters then stand back, in ms, ARGV[5] '1' in a cluster: the inbox is a shard
--         channel of this slot (SPUBLISH), else a classic one (PUBLISH)
-- The message is the new holder's token, followed by ':<fencing number>' with fencing.
-- Returns 2 after handing the lock over, 1 after freeing it, 0 when it is not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local yield_ms = tonumber(ARGV[3])
-- '~busy': since when the lock has passed from waiter to waiter without being free.
local busy = tonumber(redis.call('HGET', KEYS[3], '~busy') or now)
if yield_ms > 0 and now - busy >= yield_ms then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[3], '~busy')
  redis.call('HSET', KEYS[3], '~yield', now + tonumber(ARGV[4]))
  return 1
end
local nxt = redis.call('LPOP', KEYS[2])
while nxt do
  local meta = redis.call('HGET', KEYS[3], nxt)
  redis.call('HDEL', KEYS[3], nxt)
  if meta then
    local alive, ttl, inbox = string.match(meta, '^(%d+):(%d+):(.+)$')
    if alive and tonumber(alive) >= now then
      redis.call('SET', KEYS[1], nxt, 'PX', ttl)
      local msg = nxt
      if ARGV[2] == '1' then msg = nxt .. ':' .. redis.call('INCR', KEYS[4]) end
      if redis.call(ARGV[5] == '1' and 'SPUBLISH' or 'PUBLISH', inbox, msg) > 0 then
        redis.call('HSET', KEYS[3], '~busy', busy)
        return 2
      end
    end
  end
  nxt = redis.call('LPOP', KEYS[2])
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[3], '~busy')
return 1
