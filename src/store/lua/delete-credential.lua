--[[
  delete-credential: removes one credential and everything indexed on it, atomically, as a
  compare-and-set on the record version. Ends any refresh lease: a refresh in flight then fails
  its compare-and-set, so a deleted credential is never brought back.

  When the provider must be told (RFC 7009), the record is not dropped but renamed to its
  revocation key and queued: the tokens stay sealed (and counted under their KEK) until the
  revoker has told the provider. The queue entry is born leased (scored at the lease deadline)
  to the replica that deleted it, which revokes at once; if that replica dies, another one takes
  it when the lease ends. The token.revoked event goes to the shard's outbox in the same step.

  KEYS[1]  credential   HASH  <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  user index   SET   <prefix>{s<n>}:user:<user>
  KEYS[3]  due          ZSET  <prefix>{s<n>}:due
  KEYS[4]  kek counts   HASH  <prefix>{s<n>}:kek
  KEYS[5]  leases       HASH  <prefix>{s<n>}:leases
  KEYS[6]  states       HASH  <prefix>{s<n>}:states
  KEYS[7]  revocations  ZSET  <prefix>{s<n>}:revocations
  KEYS[8]  revocation   HASH  <prefix>{s<n>}:revoke:<version>:<user>:<provider> (version = ARGV[3])
  KEYS[9]  outbox       LIST  <prefix>{s<n>}:outbox

  ARGV[1]  provider id (member of the user index)
  ARGV[2]  due member "<user>:<provider>"
  ARGV[3]  expected version: "" = any, "<n>" = must equal (required when revoking)
  ARGV[4]  revocation member "<version>:<user>:<provider>", or "" to delete without revoking
  ARGV[5]  revocation lease length in ms (when revoking; from Redis TIME)
  ARGV[6]  event id, or "" for no event
  ARGV[7]  event time in ms
  ARGV[8]  user, ARGV[9] why ("deleted" by a caller, "provider_webhook"), ARGV[10] who (caller name)

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

if ARGV[4] ~= '' and ARGV[3] == current[1] then
  redis.call('RENAME', KEYS[1], KEYS[8])
  redis.call('HSET', KEYS[8], 'queued_at', ARGV[7], 'attempts', 0)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[7], now + tonumber(ARGV[5]), ARGV[4])
else
  redis.call('DEL', KEYS[1])
  if current[2] then
    if redis.call('HINCRBY', KEYS[4], current[2], -1) <= 0 then redis.call('HDEL', KEYS[4], current[2]) end
  end
end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
if current[3] then
  if redis.call('HINCRBY', KEYS[6], current[3], -1) <= 0 then redis.call('HDEL', KEYS[6], current[3]) end
end
if ARGV[6] ~= '' then
  redis.call('RPUSH', KEYS[9], cjson.encode({
    id = ARGV[6], type = 'token.revoked', at = tonumber(ARGV[7]),
    data = { user = ARGV[8], provider = ARGV[1], reason = ARGV[9], by = ARGV[10], version = tonumber(current[1]) },
  }))
end
return {1, tonumber(current[1])}
