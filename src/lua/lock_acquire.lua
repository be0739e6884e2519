-- The fair lock, acquire. Waiters queue their tokens in a list (KEYS[2]) and keep
-- 'alive_until:ttl' in a hash (KEYS[3]), refreshed on every poll; entries that stop being
-- refreshed are skipped, so a dead waiter never holds the queue up for long. Times come from
-- the server's clock, never from clients'.
-- KEYS[1] the lock, KEYS[2] the waiter queue (list), KEYS[3] the waiter heartbeats (hash)
-- ARGV[1] our token, ARGV[2] the lock ttl in ms, ARGV[3] how long in ms our heartbeat stays
--         alive, or '0' not to queue
-- Returns 1 if the lock is ours (it was free with no live waiter ahead, or was handed to us
-- already), else 0 after queueing or refreshing our entry.
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local head = redis.call('LINDEX', KEYS[2], 0)
while head do
  local meta = redis.call('HGET', KEYS[3], head)
  if meta and tonumber(string.match(meta, '^(%d+)')) >= now then break end
  redis.call('LPOP', KEYS[2])
  redis.call('HDEL', KEYS[3], head)
  head = redis.call('LINDEX', KEYS[2], 0)
end
if (not head or head == ARGV[1])
   and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if head then
    redis.call('LPOP', KEYS[2])
    redis.call('HDEL', KEYS[3], head)
  end
  return 1
end
if ARGV[3] ~= '0' then
  local alive = tonumber(ARGV[3])
  if redis.call('HSET', KEYS[3], ARGV[1], (now + alive) .. ':' .. ARGV[2]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[1])
  end
  redis.call('PEXPIRE', KEYS[2], alive * 2)
  redis.call('PEXPIRE', KEYS[3], alive * 2)
end
return 0
