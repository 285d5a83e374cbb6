--[[
  record-failure: a refresh attempt failed. Either the credential is dead (reauth: the provider
  rejected the refresh token; no more provider calls until a new credential is PUT) or it is
  retried later (retry: the next attempt becomes its schedule). Compare-and-set on the version:
  a credential replaced or deleted meanwhile is left alone. Ends this owner's lease.
  The events it causes go to the shard's outbox in the same step: token.reauth_required when the
  credential dies, token.refresh_failed once, when it has been failing for the threshold.

  KEYS[1]  credential  HASH  <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  due         ZSET  <prefix>{s<n>}:due
  KEYS[3]  leases      HASH  <prefix>{s<n>}:leases
  KEYS[4]  states      HASH  <prefix>{s<n>}:states
  KEYS[5]  outbox      LIST  <prefix>{s<n>}:outbox

  ARGV[1]  member "<user>:<provider>"
  ARGV[2]  the version the attempt read
  ARGV[3]  owner token
  ARGV[4]  "retry" or "reauth"
  ARGV[5]  retry: delay in ms until the next attempt
  ARGV[6]  short reason, for operators (never provider text, never a token)
  ARGV[7]  id for the event this failure may cause
  ARGV[8]  emit token.refresh_failed once failing for this many ms
  ARGV[9]  user, ARGV[10] provider id (for the event)

  Returns {1, consecutive failures, failing since ms, now ms, previous attempt ms or 0, event}
  where event is 0 (none), 1 (token.refresh_failed) or 2 (token.reauth_required), or
  {-1, 0, 0, 0, 0, 0} when the credential changed meanwhile (nothing written).
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local record = redis.call('HMGET', KEYS[1], 'version', 'state', 'failures', 'failing_since', 'attempted_at')
if not record[1] or record[1] ~= ARGV[2] then return {-1, 0, 0, 0, 0, 0} end

local function emit(kind, data)
  data.user = ARGV[9]
  data.provider = ARGV[10]
  redis.call('RPUSH', KEYS[5], cjson.encode({ id = ARGV[7], type = kind, at = now, data = data }))
end

local held = redis.call('HGET', KEYS[3], ARGV[1])
if held and string.match(held, '^(.*)|%d+$') == ARGV[3] then redis.call('HDEL', KEYS[3], ARGV[1]) end

local failures = tonumber(record[3] or '0') + 1
local since = tonumber(record[4] or now)
local previous = tonumber(record[5] or '0')
redis.call('HSET', KEYS[1], 'failures', failures, 'failing_since', since, 'attempted_at', now, 'last_error', ARGV[6])

local event = 0
if ARGV[4] == 'reauth' then
  redis.call('HSET', KEYS[1], 'state', 'reauth_required')
  redis.call('HDEL', KEYS[1], 'refresh_at')
  redis.call('ZREM', KEYS[2], ARGV[1])
  if record[2] ~= 'reauth_required' then
    if record[2] and redis.call('HINCRBY', KEYS[4], record[2], -1) <= 0 then redis.call('HDEL', KEYS[4], record[2]) end
    redis.call('HINCRBY', KEYS[4], 'reauth_required', 1)
    emit('token.reauth_required', { reason = 'the provider rejected the refresh token' })
    event = 2
  end
else
  local at = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'refresh_at', at)
  redis.call('ZADD', KEYS[2], at, ARGV[1])
  -- Once per failing streak: the first failure at or past the threshold.
  local threshold = tonumber(ARGV[8])
  local before = -1
  if previous > 0 then before = previous - since end
  if now - since >= threshold and before < threshold then
    emit('token.refresh_failed', { reason = ARGV[6], failing_since = since, attempts = failures })
    event = 1
  end
end
return {1, failures, since, now, previous, event}
