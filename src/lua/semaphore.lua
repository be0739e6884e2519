-- The semaphore: at most `limit` permits of a key held at once. One script for every operation,
-- so that serving the queue is written once. Permits are members of a sorted set scored by their
-- expiry on the server's clock (TIME), so each one ends on its own lease; expired ones are
-- dropped before anything is counted. Waiters queue as the lock's do (lock_acquire.lua): a list
-- of tokens plus a hash token -> 'alive_until:ttl:limit:inbox' refreshed by each poll; a freed
-- permit goes straight to the first live waiter, announced on its inbox.
-- KEYS[1] the permits (zset), KEYS[2] the waiter queue (list), KEYS[3] the waiter heartbeats (hash)
-- ARGV[1] the operation: 'acquire', 'release', 'extend' or 'leave'
-- ARGV[2] our token, ARGV[3] our limit, ARGV[4] the permit's ttl in ms,
-- ARGV[5] how long in ms our heartbeat stays alive, or '0' not to queue, ARGV[6] our inbox,
-- ARGV[7] '1' in a cluster: inboxes are shard channels of this slot (SPUBLISH), else PUBLISH
-- Returns, acquire: 1 if we hold a permit (granted now or handed to us before), else after
-- queueing 0 when we are first in line and -1 when live waiters are ahead of us. Release: 1 if
-- our permit was held, else 0. Extend: 1 if our permit was held and now ends ttl ms from now,
-- else 0. Leave: 1 if a permit was handed to us meanwhile (we hold it), else 0.
-- The limit is the caller's: a caller is admitted while fewer than its own limit are held.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, me = ARGV[1], ARGV[2]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

-- The set lives as long as its longest permit.
local function keep()
  local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIRE', KEYS[1], tonumber(top[2]) - now + 1) end
end

-- Grant permits to the live waiters at the head of the queue while there is room under each
-- one's limit. A waiter nobody hears (PUBLISH reaches no subscriber) is gone: skip it. Our own
-- entry is granted without a message: we are reading the answer.
local function serve()
  local held = redis.call('ZCARD', KEYS[1])
  local head = redis.call('LINDEX', KEYS[2], 0)
  while head do
    local meta = redis.call('HGET', KEYS[3], head)
    local alive, ttl, limit, inbox
    if meta then alive, ttl, limit, inbox = string.match(meta, '^(%d+):(%d+):(%d+):(.+)$') end
    if alive and tonumber(alive) >= now then
      if held >= tonumber(limit) then return end
      redis.call('ZADD', KEYS[1], now + tonumber(ttl), head)
      if head == me or redis.call(ARGV[7] == '1' and 'SPUBLISH' or 'PUBLISH', inbox, head) > 0 then
        held = held + 1
      else
        redis.call('ZREM', KEYS[1], head)
      end
    end
    redis.call('LPOP', KEYS[2])
    redis.call('HDEL', KEYS[3], head)
    head = redis.call('LINDEX', KEYS[2], 0)
  end
end

if op == 'extend' then
  if not redis.call('ZSCORE', KEYS[1], me) then return 0 end
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[4]), me)
  keep()
  return 1
end
if op == 'release' or op == 'leave' then
  local held = redis.call('ZSCORE', KEYS[1], me)
  if op == 'release' then
    redis.call('ZREM', KEYS[1], me)
  elseif not held then
    redis.call('LREM', KEYS[2], 1, me)
    redis.call('HDEL', KEYS[3], me)
  end
  serve()
  keep()
  if held then return 1 end
  return 0
end

-- acquire
if redis.call('ZSCORE', KEYS[1], me) then return 1 end
serve()
local granted = redis.call('ZSCORE', KEYS[1], me)
local head = redis.call('LINDEX', KEYS[2], 0)
if not granted and not head and redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), me)
  granted = true
end
if granted then
  keep()
  return 1
end
if ARGV[5] ~= '0' then
  local alive = tonumber(ARGV[5])
  local meta = (now + alive) .. ':' .. ARGV[4] .. ':' .. ARGV[3] .. ':' .. ARGV[6]
  if redis.call('HSET', KEYS[3], me, meta) == 1 then
    redis.call('RPUSH', KEYS[2], me)
  end
  redis.call('PEXPIRE', KEYS[2], alive * 2)
  redis.call('PEXPIRE', KEYS[3], alive * 2)
  if head and head ~= me then return -1 end
end
return 0
