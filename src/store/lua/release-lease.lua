--[[
  release-lease: gives a lease back without writing the credential (nothing was due after all,
  or the refresh was abandoned), and puts the schedule back at the record's refresh_at.
  Does nothing when the lease is no longer this owner's.

  KEYS[1]  credential  HASH  <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  due         ZSET  <prefix>{s<n>}:due
  KEYS[3]  leases      HASH  <prefix>{s<n>}:leases

  ARGV[1]  member "<user>:<provider>"
  ARGV[2]  owner token

  Returns 1 when released, 0 when the lease was not this owner's.
]]
local held = redis.call('HGET', KEYS[3], ARGV[1])
if not held or string.match(held, '^(.*)|%d+$') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
local record = redis.call('HMGET', KEYS[1], 'refresh_at', 'state')
if record[1] and record[2] == 'active' then
  redis.call('ZADD', KEYS[2], record[1], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
