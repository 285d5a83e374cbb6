--[[
  rewrap-credential: replaces a record's wrapped data key (the blob re-encoded with the new KEK
  id and wrapped DEK; IV and ciphertext unchanged) and moves it between the per-key counts.
  Compare-and-set: only if the record is still at the version read and sealed under the old
  key, so a write or refresh since the read is never undone (it is sealed under the active key
  already). The version does not change: the credential is the same.

  KEYS[1]  credential  HASH  <prefix>{s<n>}:cred:<user>:<provider>
  KEYS[2]  kek counts  HASH  <prefix>{s<n>}:kek

  ARGV[1]  the version read
  ARGV[2]  the KEK id read (old)
  ARGV[3]  the KEK id now wrapping it (new)
  ARGV[4]  the new blob

  Returns 1 when rewrapped, 0 when the record changed meanwhile (nothing written).
]]
local record = redis.call('HMGET', KEYS[1], 'version', 'kek')
if record[1] ~= ARGV[1] or record[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'blob', ARGV[4], 'kek', ARGV[3])
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
return 1
