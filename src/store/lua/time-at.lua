--[[
  time-at: Redis TIME, from the master that holds KEYS[1]. Schedules and leases compare times
  inside scripts on that master; on a Redis Cluster every master has its own clock, so a time
  that will be compared there must come from there. The key is only routed by, never read.

  KEYS[1]  any key of the slot whose master's clock is wanted

  Returns {seconds, microseconds}, as TIME does.
]]
return redis.call('TIME')
