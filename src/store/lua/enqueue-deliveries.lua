--[[
  enqueue-deliveries: turns one event from an outbox into a delivery per subscriber whose
  filter matches it. Delivery ids are derived from the event id and the subscriber, and an
  existing delivery is never touched, so moving the same event twice (a replica died between
  this step and removing the event from its outbox, or two replicas swept it at once) delivers
  it once.

  KEYS[1]     pending    ZSET  <prefix>{webhooks}:pending
  KEYS[2…]    delivery   HASH  <prefix>{webhooks}:delivery:<id>, one per subscriber

  ARGV[1]     event id (the webhook-id of every attempt)
  ARGV[2]     event type
  ARGV[3]     the webhook body, exactly as it will be signed and sent
  ARGV[4…]    delivery id, subscriber name, for each delivery in KEYS order

  The first attempt is due at once (Redis TIME). Returns the number of deliveries created.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created = 0
for i = 2, #KEYS do
  local id = ARGV[4 + (i - 2) * 2]
  local subscriber = ARGV[5 + (i - 2) * 2]
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'id', id, 'event', ARGV[1], 'type', ARGV[2], 'subscriber', subscriber, 'body', ARGV[3],
      'status', 'pending', 'attempts', 0, 'created_at', now, 'next_at', now)
    redis.call('ZADD', KEYS[1], now, id)
    created = created + 1
  end
end
return created
