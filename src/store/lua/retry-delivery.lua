--[[
  retry-delivery: an operator sends a delivery again (a dead letter once its subscriber is
  fixed, or a delivered one the subscriber lost): it starts a fresh retry schedule at once,
  keeping its id, so the receiver's deduplication still recognises it.

  KEYS[1]  delivery   HASH  <prefix>{webhooks}:delivery:<id>
  KEYS[2]  pending    ZSET  <prefix>{webhooks}:pending
  KEYS[3]  failed     ZSET  <prefix>{webhooks}:failed
  KEYS[4]  delivered  ZSET  <prefix>{webhooks}:delivered

  ARGV[1]  delivery id

  Returns 1 when rescheduled, 0 when there is no such delivery.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', 0, 'next_at', now)
redis.call('HDEL', KEYS[1], 'failed_at', 'delivered_at')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
