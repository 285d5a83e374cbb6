--[[
  list-lengths: LLEN of every key given, in one call. The outbox relay's sweep looks at every
  outbox (1,026 lists); on one Redis this is one script run instead of 1,026 commands. On a
  Redis Cluster a script's keys must share a slot, so the relay asks each list apart there.

  KEYS[1..n]  lists

  Returns {length of KEYS[1], ..., length of KEYS[n]}.
]]
local lengths = {}
for i, key in ipairs(KEYS) do lengths[i] = redis.call('LLEN', key) end
return lengths
