--[[
  claim-device-polls: a replica takes up to N device-flow sessions whose next poll of the
  provider is due, and moves each forward by the lease, so one replica polls each session per
  interval; if it dies, the session comes due again when the lease ends. Redis TIME.

  KEYS[1]  polls  ZSET  <prefix>{connect}:device:due

  ARGV[1]  most sessions to take
  ARGV[2]  lease length in ms

  Returns {now in ms, session id, …}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local deadline = now + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], deadline, id)
end
return {now, unpack(ids)}
