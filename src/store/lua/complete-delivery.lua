--[[
  complete-delivery: records the outcome of one attempt by the lease's owner: delivered (kept a
  while for operators, then expires), retry (due again after the delay) or failed (dead letter,
  kept until an operator retries it). An owner whose lease was taken over records nothing.

  KEYS[1]  delivery   HASH  <prefix>{webhooks}:delivery:<id>
  KEYS[2]  pending    ZSET  <prefix>{webhooks}:pending
  KEYS[3]  leases     HASH  <prefix>{webhooks}:leases
  KEYS[4]  failed     ZSET  <prefix>{webhooks}:failed
  KEYS[5]  delivered  ZSET  <prefix>{webhooks}:delivered

  ARGV[1]  delivery id
  ARGV[2]  owner token
  ARGV[3]  "delivered", "retry" or "failed"
  ARGV[4]  retry: delay in ms before the next attempt
  ARGV[5]  HTTP status of the answer, or "" (network error, timeout)
  ARGV[6]  short reason (never the response body)
  ARGV[7]  how long a delivered delivery is kept, in ms

  Returns {1, attempts} when recorded, {0, 0} when the lease was not this owner's.
]]
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return {0, 0} end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'last_attempt_at', now, 'last_status', ARGV[5], 'last_error', ARGV[6])
if ARGV[3] == 'delivered' then
  redis.call('HSET', KEYS[1], 'status', 'delivered', 'delivered_at', now)
  redis.call('HDEL', KEYS[1], 'next_at')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[5], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[7]))
elseif ARGV[3] == 'retry' then
  local at = now + tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'status', 'pending', 'next_at', at)
  redis.call('ZADD', KEYS[2], at, ARGV[1])
else
  redis.call('HSET', KEYS[1], 'status', 'failed', 'failed_at', now)
  redis.call('HDEL', KEYS[1], 'next_at')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[4], now, ARGV[1])
end
return {1, attempts}
