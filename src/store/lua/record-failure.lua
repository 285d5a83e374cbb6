--[[
  record-failure: a refresh attempt failed. Either the credential is dead (reauth: the provider
  rejected the refresh token; no more provider calls until a new credential is PUT) or it is
  retried later (retry: the next attempt becomes its schedule). Compare-and-set on the version:
  a credential replaced or deleted meanwhile is left alone. Ends this owner's lease.

  KEYS[1]  credential  HASH  <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  due         ZSET  <prefix>{s<n>}:due
  KEYS[3]  leases      HASH  <prefix>{s<n>}:leases
  KEYS[4]  states      HASH  <prefix>{s<n>}:states

  ARGV[1]  member "<user>:<provider>"
  ARGV[2]  the version the attempt read
  ARGV[3]  owner token
  ARGV[4]  "retry" or "reauth"
  ARGV[5]  retry: delay in ms until the next attempt
  ARGV[6]  short reason, for operators (never provider text, never a token)

  Returns {1, consecutive failures, failing since ms, now ms, previous attempt ms or 0}, or
  {-1, 0, 0, 0, 0} when the credential changed meanwhile (nothing written).
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local record = redis.call('HMGET', KEYS[1], 'version', 'state', 'failures', 'failing_since', 'attempted_at')
if not record[1] or record[1] ~= ARGV[2] then return {-1, 0, 0, 0, 0} end

local held = redis.call('HGET', KEYS[3], ARGV[1])
if held and string.match(held, '^(.*)|%d+$') == ARGV[3] then redis.call('HDEL', KEYS[3], ARGV[1]) end

local failures = tonumber(record[3] or '0') + 1
local since = tonumber(record[4] or now)
redis.call('HSET', KEYS[1], 'failures', failures, 'failing_since', since, 'attempted_at', now, 'last_error', ARGV[6])

if ARGV[4] == 'reauth' then
  redis.call('HSET', KEYS[1], 'state', 'reauth_required')
  redis.call('HDEL', KEYS[1], 'refresh_at')
  redis.call('ZREM', KEYS[2], ARGV[1])
  if record[2] ~= 'reauth_required' then
    if record[2] and redis.call('HINCRBY', KEYS[4], record[2], -1) <= 0 then redis.call('HDEL', KEYS[4], record[2]) end
    redis.call('HINCRBY', KEYS[4], 'reauth_required', 1)
  end
else
  local at = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'refresh_at', at)
  redis.call('ZADD', KEYS[2], at, ARGV[1])
end
return {1, failures, since, now, tonumber(record[5] or '0')}
