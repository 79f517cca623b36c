"""The tagged cache's Redis side: the Lua scripts each read, store and invalidation runs as one
atomic step (services/platform/cache.py says why each exists)."""

from __future__ import annotations

import re

RUN_ID = re.compile(rb"^run_id:([0-9a-f]+)", re.MULTILINE)

# KEYS: epoch, entry, tags…, watched…, markers…; ARGV: tag count, the caller's L1 stamp, a fresh
# token, tag TTL, the run_id this process last saw, watched count. The epoch {run, token} is
# drawn anew when its run is not the server's (asked with INFO only when it is not the
# caller's); when it replaces another server's epoch, every marker is set to Redis's clock (that
# server's data may lack the ones writes left since). Returns {run_id} alone
# when the caller's run_id is not the server's, else {run_id, current versions, watched values,
# 'same' | stamp, soft expiry, payload}; the current versions are the epoch's token and then
# each tag's version.
READ_SCRIPT = """
local run = ARGV[5]
local epoch = redis.call('HMGET', KEYS[1], 'run', 'token')
if epoch[1] ~= run then
  run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  if epoch[1] ~= run then
    epoch[2] = ARGV[3] .. '.epoch'
    redis.call('HSET', KEYS[1], 'run', run, 'token', epoch[2])
    if epoch[1] then
      local now = redis.call('TIME')
      for i = tonumber(ARGV[1]) + tonumber(ARGV[6]) + 3, #KEYS do
        redis.call('SET', KEYS[i], string.format('%d.%06d', now[1], now[2]))
      end
    end
  end
end
if run ~= ARGV[5] then
  return {run}
end
local current = epoch[2]
local ntags = tonumber(ARGV[1])
for i = 3, ntags + 2 do
  local version = redis.call('GET', KEYS[i])
  if not version then
    version = ARGV[3] .. '.' .. i
    redis.call('SET', KEYS[i], version, 'EX', ARGV[4])
  end
  current = current .. ',' .. version
end
local watched = {}
for i = ntags + 3, ntags + tonumber(ARGV[6]) + 2 do
  watched[#watched + 1] = redis.call('GET', KEYS[i]) or ''
end
local reply = {run, current, watched}
local entry = redis.call('HMGET', KEYS[2], 'v', 'c', 's', 'd')
if entry[1] == current then
  if entry[2] == ARGV[2] then
    reply[4] = 'same'
  else
    reply[4] = entry[2]
    reply[5] = entry[3]
    reply[6] = entry[4]
  end
end
return reply
"""

# KEYS: epoch, entry, tags…; ARGV: versions read before computing, stamp, soft expiry,
# payload, TTL ms, then field/value pairs stored beside them. Stores nothing when the epoch or a
# tag changed meanwhile: that value may predate the write (or the server it was computed for).
STORE_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'token') or ''
for i = 3, #KEYS do
  current = current .. ',' .. (redis.call('GET', KEYS[i]) or '')
end
if current ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], 'v', ARGV[1], 'c', ARGV[2], 's', ARGV[3], 'd', ARGV[4])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""

# KEYS: tags…, touched…; ARGV: tag count, a fresh token, tag TTL. Touched keys get Redis's clock.
INVALIDATE_SCRIPT = """
local ntags = tonumber(ARGV[1])
for i = 1, ntags do
  redis.call('SET', KEYS[i], ARGV[2] .. '.' .. i, 'EX', ARGV[3])
end
local now = redis.call('TIME')
for i = ntags + 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d.%06d', now[1], now[2]))
end
return ntags
"""

RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
