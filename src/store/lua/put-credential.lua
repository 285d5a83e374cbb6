--[[
  put-credential: writes one sealed credential and everything indexed on it, atomically, as a
  compare-and-set on the record version. Used by PUT and by a successful refresh; either ends any
  refresh lease on the credential (a refresh still in flight then fails its compare-and-set).
  A refresh that ends a failing streak long enough to have been announced puts
  token.refresh_recovered in the shard's outbox in the same step.

  KEYS[1]  credential  HASH    <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  user index  SET     <prefix>{s<n>}:user:<user>
  KEYS[3]  due         ZSET    <prefix>{s<n>}:due
  KEYS[4]  kek counts  HASH    <prefix>{s<n>}:kek
  KEYS[5]  versions    STRING  <prefix>{s<n>}:seq
  KEYS[6]  leases      HASH    <prefix>{s<n>}:leases
  KEYS[7]  states      HASH    <prefix>{s<n>}:states
  KEYS[8]  outbox      LIST    <prefix>{s<n>}:outbox

  ARGV[1]  provider id (member of the user index)
  ARGV[2]  due member "<user>:<provider>"
  ARGV[3]  expected version: "" = any, "*" = must exist, "!" = must not exist, "<n>" = must equal
  ARGV[4]  refresh_at in ms, or "" when nothing will refresh this credential
  ARGV[5]  now in ms (updated_at, and created_at of a new record)
  ARGV[6]  id of the KEK the blob's data key is wrapped under
  ARGV[7]  state of the new record (active)
  ARGV[8]  a refresh: id for the token.refresh_recovered event it may cause; "" for a caller's PUT
  ARGV[9]  announce the recovery when the failures had lasted this many ms
  ARGV[10] user (for the event)
  ARGV[11…] field, value pairs of the rest of the record (blob and clear metadata)

  Returns {version, 1 if created else 0, created_at, 1 if token.refresh_recovered was emitted},
  or {-1, current version or 0} when the expected version does not match (nothing is written).
]]
local current = redis.call('HMGET', KEYS[1], 'version', 'kek', 'created_at', 'state', 'failures', 'failing_since', 'attempted_at')
local expected = ARGV[3]
if expected == '*' then
  if not current[1] then return {-1, 0} end
elseif expected == '!' then
  if current[1] then return {-1, tonumber(current[1])} end
elseif expected ~= '' and expected ~= current[1] then
  return {-1, tonumber(current[1] or '0')}
end

local version = redis.call('INCR', KEYS[5])
local createdAt = current[3] or ARGV[5]
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', version, 'kek', ARGV[6], 'state', ARGV[7], 'updated_at', ARGV[5],
  'created_at', createdAt, unpack(ARGV, 11))

if current[2] then
  if redis.call('HINCRBY', KEYS[4], current[2], -1) <= 0 then redis.call('HDEL', KEYS[4], current[2]) end
end
redis.call('HINCRBY', KEYS[4], ARGV[6], 1)
if current[4] then
  if redis.call('HINCRBY', KEYS[7], current[4], -1) <= 0 then redis.call('HDEL', KEYS[7], current[4]) end
end
redis.call('HINCRBY', KEYS[7], ARGV[7], 1)

redis.call('HDEL', KEYS[6], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'refresh_at', ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
else
  redis.call('ZREM', KEYS[3], ARGV[2])
end
redis.call('SADD', KEYS[2], ARGV[1])

-- Recovered pairs with refresh_failed: only a failure long enough to have been announced.
local recovered = 0
if ARGV[8] ~= '' and current[5] and current[6] and current[7] then
  local since = tonumber(current[6])
  if tonumber(current[7]) - since >= tonumber(ARGV[9]) then
    redis.call('RPUSH', KEYS[8], cjson.encode({
      id = ARGV[8], type = 'token.refresh_recovered', at = tonumber(ARGV[5]),
      data = { user = ARGV[10], provider = ARGV[1], failing_since = since, attempts = tonumber(current[5]) },
    }))
    recovered = 1
  end
end

if current[1] then return {version, 0, createdAt, recovered} end
return {version, 1, createdAt, recovered}
