--[[
  delete-credential: removes one credential and everything indexed on it, atomically, as a
  compare-and-set on the record version. Ends any refresh lease: a refresh in flight then fails
  its compare-and-set, so a deleted credential is never brought back.

  KEYS[1]  credential  HASH  <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  user index  SET   <prefix>{s<n>}:user:<user>
  KEYS[3]  due         ZSET  <prefix>{s<n>}:due
  KEYS[4]  kek counts  HASH  <prefix>{s<n>}:kek
  KEYS[5]  leases      HASH  <prefix>{s<n>}:leases
  KEYS[6]  states      HASH  <prefix>{s<n>}:states

  ARGV[1]  provider id (member of the user index)
  ARGV[2]  due member "<user>:<provider>"
  ARGV[3]  expected version: "" = any, "<n>" = must equal

  Returns {1, deleted version}, {0, 0} when there is no such credential, or {-1, current
  version} when the expected version does not match (nothing is deleted).
]]
local current = redis.call('HMGET', KEYS[1], 'version', 'kek', 'state')
if not current[1] then
  -- Keep the indexes honest even if they ever pointed at nothing.
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('HDEL', KEYS[5], ARGV[2])
  return {0, 0}
end
if ARGV[3] ~= '' and ARGV[3] ~= current[1] then return {-1, tonumber(current[1])} end

redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
if current[2] then
  if redis.call('HINCRBY', KEYS[4], current[2], -1) <= 0 then redis.call('HDEL', KEYS[4], current[2]) end
end
if current[3] then
  if redis.call('HINCRBY', KEYS[6], current[3], -1) <= 0 then redis.call('HDEL', KEYS[6], current[3]) end
end
return {1, tonumber(current[1])}
