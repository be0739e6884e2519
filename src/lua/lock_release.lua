-- The fair lock, release: a direct hand-off to the first live waiter (see lock_acquire.lua).
-- KEYS[1] the lock, KEYS[2] the waiter queue (list), KEYS[3] the waiter heartbeats (hash)
-- ARGV[1] our token, ARGV[2] the channel waiters listen on
-- Returns 2 after handing the lock to the first live waiter and publishing its token, 1 after
-- deleting it (no live waiter) and publishing '', 0 when the lock is not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nxt = redis.call('LPOP', KEYS[2])
while nxt do
  local meta = redis.call('HGET', KEYS[3], nxt)
  redis.call('HDEL', KEYS[3], nxt)
  if meta then
    local alive, ttl = string.match(meta, '^(%d+):(%d+)$')
    if tonumber(alive) >= now then
      redis.call('SET', KEYS[1], nxt, 'PX', ttl)
      redis.call('PUBLISH', ARGV[2], nxt)
      return 2
    end
  end
  nxt = redis.call('LPOP', KEYS[2])
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], '')
return 1
