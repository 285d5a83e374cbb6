--[[
  claim-due: the scheduler takes up to N due refreshes of one shard and leases them. A claimed
  entry's score moves to the lease deadline, so nobody else takes it; if its worker dies, the
  entry simply comes due again when the lease ends. Time is Redis TIME, never a replica's clock.

  KEYS[1]  due     ZSET  <prefix>{s<n>}:due
  KEYS[2]  leases  HASH  <prefix>{s<n>}:leases

  ARGV[1]  most entries to take
  ARGV[2]  lease length in ms
  ARGV[3]  owner token of this claim

  Returns {now in ms, member, member, …}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local deadline = now + tonumber(ARGV[2])
for _, member in ipairs(members) do
  redis.call('ZADD', KEYS[1], deadline, member)
  redis.call('HSET', KEYS[2], member, ARGV[3] .. '|' .. deadline)
end
return {now, unpack(members)}
