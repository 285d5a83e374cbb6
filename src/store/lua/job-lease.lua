--[[
  job-lease: takes or renews the lease on a background job (the rewrap). A running job whose
  owner stopped renewing (a replica died) is taken over by the next replica to ask; the job
  keeps its cursor, so the new owner resumes where the old one stopped.

  KEYS[1]  job  HASH  <prefix>{jobs}:rewrap:<id>

  ARGV[1]  owner token
  ARGV[2]  lease length in ms

  Returns {1, now} when this owner holds the lease, {0, ms until the current lease ends} when
  another owner does, {-1, 0} when the job is not running.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local job = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until')
if job[1] ~= 'running' then return {-1, 0} end
local leaseUntil = tonumber(job[3] or '0')
if job[2] ~= ARGV[1] and leaseUntil > now then return {0, leaseUntil - now} end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until', now + tonumber(ARGV[2]))
return {1, now}
