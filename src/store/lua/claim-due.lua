--[[
  claim-due: the scheduler takes up to N due refreshes and N due upstream revocations of one
  shard and leases them. A claimed entry's score moves to the lease deadline, so nobody else
  takes it; if its worker dies, the entry simply comes due again when the lease ends. Time is
  Redis TIME, never a replica's clock. Refresh leases are also recorded with their owner (the
  refresher re-checks them before calling the provider); revoking twice is harmless (RFC 7009
  answers 200 for an unknown token), so revocations need only the score.

  KEYS[1]  due          ZSET  <prefix>{s<n>}:due
  KEYS[2]  leases       HASH  <prefix>{s<n>}:leases
  KEYS[3]  revocations  ZSET  <prefix>{s<n>}:revocations

  ARGV[1]  most entries to take of each kind
  ARGV[2]  lease length in ms
  ARGV[3]  owner token of this claim

  Returns {now in ms, number of refreshes n, n refresh members…, revocation members…}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[2])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(members) do
  redis.call('ZADD', KEYS[1], deadline, member)
  redis.call('HSET', KEYS[2], member, ARGV[3] .. '|' .. deadline)
end
local revocations = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local reply = {now, #members}
for _, member in ipairs(members) do reply[#reply + 1] = member end
for _, member in ipairs(revocations) do
  redis.call('ZADD', KEYS[3], deadline, member)
  reply[#reply + 1] = member
end
return reply
