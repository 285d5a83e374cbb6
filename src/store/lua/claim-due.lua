--[[
  claim-due: the scheduler takes up to N due refreshes and N due upstream revocations, in all,
  from one or more shards (in the order given) and leases them. A claimed entry's score moves to the lease deadline, so
  nobody else takes it; if its worker dies, the entry simply comes due again when the lease ends.
  Time is Redis TIME, never a replica's clock. Refresh leases are also recorded with their owner
  (the refresher re-checks them before calling the provider); revoking twice is harmless (RFC
  7009 answers 200 for an unknown token), so revocations need only the score.

  On one Redis a call covers a whole round of shards (one round trip, one script run); on a
  Redis Cluster every key of a call must share a slot, so a call covers one shard.

  KEYS[3i+1]  due          ZSET  <prefix>{s<n>}:due          of the i-th shard (i from 0)
  KEYS[3i+2]  leases       HASH  <prefix>{s<n>}:leases
  KEYS[3i+3]  revocations  ZSET  <prefix>{s<n>}:revocations

  ARGV[1]  most entries to take of each kind, over all the shards
  ARGV[2]  lease length in ms
  ARGV[3]  owner token of this claim

  Returns {now in ms, then per shard: number of refreshes r, number of revocations v,
  r refresh members…, v revocation members…}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local refreshesLeft = tonumber(ARGV[1])
local revocationsLeft = refreshesLeft
local deadline = now + tonumber(ARGV[2])
local reply = {now}
for i = 1, #KEYS, 3 do
  local members, revocations = {}, {}
  if refreshesLeft > 0 then
    members = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, refreshesLeft)
    refreshesLeft = refreshesLeft - #members
  end
  for _, member in ipairs(members) do
    redis.call('ZADD', KEYS[i], deadline, member)
    redis.call('HSET', KEYS[i + 1], member, ARGV[3] .. '|' .. deadline)
  end
  if revocationsLeft > 0 then
    revocations = redis.call('ZRANGEBYSCORE', KEYS[i + 2], '-inf', now, 'LIMIT', 0, revocationsLeft)
    revocationsLeft = revocationsLeft - #revocations
  end
  for _, member in ipairs(revocations) do
    redis.call('ZADD', KEYS[i + 2], deadline, member)
  end
  reply[#reply + 1] = #members
  reply[#reply + 1] = #revocations
  for _, member in ipairs(members) do reply[#reply + 1] = member end
  for _, member in ipairs(revocations) do reply[#reply + 1] = member end
end
return reply
