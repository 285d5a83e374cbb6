--[[
  acquire-lease: an on-demand (or forced) refresh takes the credential's refresh lease, the same
  lease the scheduler's claim takes, so concurrent callers on every replica cause one provider
  call. A failing credential may be probed on demand at most once per `min gap`. An app token
  (client credentials) that does not exist yet can be leased too, so that one replica mints it.

  KEYS[1]  credential  HASH  <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  due         ZSET  <prefix>{s<n>}:due
  KEYS[3]  leases      HASH  <prefix>{s<n>}:leases

  ARGV[1]  member "<user>:<provider>"
  ARGV[2]  lease length in ms
  ARGV[3]  owner token
  ARGV[4]  min gap in ms between attempts on a credential that is failing (0: no limit)
  ARGV[5]  "1": lease even when the credential does not exist (to create it)

  Returns {1, now} when taken, {0, ms until the holder's lease ends} when held by another,
  {-2, ms until a probe is allowed}, or {-3, 0} when the credential does not exist.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 and ARGV[5] ~= '1' then return {-3, 0} end

local held = redis.call('HGET', KEYS[3], ARGV[1])
if held then
  local deadline = tonumber(string.match(held, '|(%d+)$'))
  if deadline and deadline > now then return {0, deadline - now} end
end

local gap = tonumber(ARGV[4])
if gap > 0 then
  local failing = redis.call('HMGET', KEYS[1], 'failures', 'attempted_at')
  if failing[1] and tonumber(failing[1]) > 0 and failing[2] then
    local since = now - tonumber(failing[2])
    if since < gap then return {-2, gap - since} end
  end
end

local deadline = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3] .. '|' .. deadline)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then redis.call('ZADD', KEYS[2], deadline, ARGV[1]) end
return {1, now}
