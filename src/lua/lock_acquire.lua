-- The fair lock, acquire. Waiters queue their tokens in a list (KEYS[2]) and keep
-- 'alive_until:ttl:inbox' in a hash (KEYS[3]), refreshed on every poll; entries that stop being
-- refreshed are skipped, so a stopped waiter never holds the queue up for long. The inbox is
-- the Pub/Sub channel of the waiter's handle, where a release announces the hand-off. Times
-- come from the server's clock, never from clients'.
-- KEYS[1] the lock, KEYS[2] the waiter queue (list), KEYS[3] the waiter heartbeats (hash),
-- KEYS[4] the fencing counter
-- ARGV[1] our token, ARGV[2] the lock ttl in ms, ARGV[3] how long in ms our heartbeat stays
--         alive, or '0' not to queue, ARGV[4] our inbox channel, ARGV[5] '1' to count grants
--         on the fencing counter
-- Returns the grant's fencing number (1 without fencing) if the lock is ours (it was free with
-- no live waiter ahead, or was handed to us already); else, after queueing or refreshing our
-- entry, 0 when we are first in line and -1 when live waiters are ahead of us (who need not
-- look at the lock as often: it cannot be theirs before it is handed to them). The hash also keeps '~yield' (until when queued waiters stand back for clients that
-- poll, see lock_release.lua).
local function granted()
  if ARGV[5] == '1' then return tonumber(redis.call('GET', KEYS[4]) or '1') end
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then return granted() end
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
local yield = tonumber(redis.call('HGET', KEYS[3], '~yield') or '0')
if (not head or head == ARGV[1]) and yield < now
   and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if head then
    redis.call('LPOP', KEYS[2])
    redis.call('HDEL', KEYS[3], head)
  end
  if ARGV[5] == '1' then return redis.call('INCR', KEYS[4]) end
  return 1
end
if ARGV[3] ~= '0' then
  local alive = tonumber(ARGV[3])
  local meta = (now + alive) .. ':' .. ARGV[2] .. ':' .. ARGV[4]
  if redis.call('HSET', KEYS[3], ARGV[1], meta) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[1])
  end
  redis.call('PEXPIRE', KEYS[2], alive * 2)
  redis.call('PEXPIRE', KEYS[3], alive * 2)
  if head and head ~= ARGV[1] then return -1 end
end
return 0
