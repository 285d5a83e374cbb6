--[[
  activate-key: makes a KEK the one every replica seals with, if the active key is still the one
  the caller read (two replicas activating at once do it once), remembers the replaced key (a
  stale replica must not bring it back), and writes key.rotated to the keys outbox in the same
  step.

  KEYS[1]  active    STRING  <prefix>{keys}:active
  KEYS[2]  replaced  SET     <prefix>{keys}:replaced
  KEYS[3]  outbox    LIST    <prefix>{keys}:outbox

  ARGV[1]  the active key id read, or "" when none was set
  ARGV[2]  the key id to activate
  ARGV[3]  the key.rotated outbox entry

  Returns 1 when activated, 0 when the active key changed meanwhile (nothing written).
]]
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if current then redis.call('SADD', KEYS[2], current) end
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
