--[[
  lease-held: is the lease still this owner's and unexpired? Checked right before a provider
  call: compare-and-set stops a stale write, but only the lease stops a second provider call.

  KEYS[1]  leases  HASH  <prefix>{s<n>}:leases
  ARGV[1]  member "<user>:<provider>"
  ARGV[2]  owner token

  Returns 1 or 0.
]]
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return 0 end
local owner, deadline = string.match(held, '^(.*)|(%d+)$')
if owner ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(deadline) <= now then return 0 end
return 1
