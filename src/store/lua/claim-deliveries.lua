--[[
  claim-deliveries: a dispatcher takes up to N deliveries whose next attempt is due and leases
  them: the score moves to the lease deadline and the owner is recorded, so only one replica
  sends an attempt; if it dies, the delivery comes due again when the lease ends. Redis TIME.

  KEYS[1]  pending  ZSET  <prefix>{webhooks}:pending
  KEYS[2]  leases   HASH  <prefix>{webhooks}:leases

  ARGV[1]  most deliveries to take
  ARGV[2]  lease length in ms
  ARGV[3]  owner token

  Returns {now in ms, delivery id, …}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local deadline = now + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], deadline, id)
  redis.call('HSET', KEYS[2], id, ARGV[3])
end
return {now, unpack(ids)}
