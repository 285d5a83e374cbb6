--[[
  finish-revocation: the provider has been told (or will never be): drops the sealed record of a
  deleted credential and its queue entry, and takes it off its KEK's count.

  KEYS[1]  revocation   HASH  <prefix>{s<n>}:revoke:<version>:<user>:<provider>
  KEYS[2]  revocations  ZSET  <prefix>{s<n>}:revocations
  KEYS[3]  kek counts   HASH  <prefix>{s<n>}:kek

  ARGV[1]  revocation member "<version>:<user>:<provider>"

  Returns 1 when dropped, 0 when it was gone already (another replica finished it).
]]
redis.call('ZREM', KEYS[2], ARGV[1])
local kek = redis.call('HGET', KEYS[1], 'kek')
if not kek then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('HINCRBY', KEYS[3], kek, -1) <= 0 then redis.call('HDEL', KEYS[3], kek) end
return 1
