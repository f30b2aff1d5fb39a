# -*- test-case-name: tests.test_im_backend -*-
"""
The Lua scripts of the Redis IM backend (L{xmeet.store.im_redis}): each
change that reads before it writes runs as one script, so that two nodes
never interleave between the read and the write.
"""

from __future__ import annotations

__all__ = ["ENQUEUE", "PUSH_HISTORY", "REMOVE_QUEUED", "STORE_CONVERSATION"]

STORE_CONVERSATION = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local number, node = string.match(stored, '^(%d+) (%S+) ')
  if number and (tonumber(number) ~= tonumber(ARGV[2]) or node ~= ARGV[3]) then
    return stored
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""
"""
Store a version of a conversation and publish it (ARGV: id, the number
and node of the version it was made on, the stored value, the IM channel,
the event) only if it was made on the stored version; else answer the
stored one, for the change to be made again on it. A version another node
refused is never published, so no node builds on it: before, every node
applied every published version and one made on a refused version could
overwrite the version that had won, losing a change (seen as a lost
member when three nodes joined users at once).
"""

PUSH_HISTORY = """
local entry, size, max_bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local overhead = tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 0 then
  local bytes = 0
  for _, old in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    bytes = bytes + #old + overhead
  end
  redis.call('SET', KEYS[2], bytes)
end
local length = redis.call('LPUSH', KEYS[1], entry)
local bytes = redis.call('INCRBY', KEYS[2], #entry + overhead)
while length > 1 and (length > size or bytes > max_bytes) do
  local oldest = redis.call('RPOP', KEYS[1])
  bytes = redis.call('DECRBY', KEYS[2], #oldest + overhead)
  length = length - 1
end
"""
"""
Keep a message in a conversation's history (KEYS: the history, its byte
count; ARGV: the entry, messages kept, bytes kept, L{xmeet.core.history.ENTRY_OVERHEAD}),
dropping the oldest beyond either bound but never the newest. A count
lost (or written before counts existed) is counted again from the list.
"""

_QUEUED_COST = """
local function cost(entry, overhead)
  local space = string.find(entry, ' ', 1, true) or 0
  return #entry - space + overhead
end
"""
"""
What a queued C{"ID JSON"} entry costs: its JSON, without the id, plus
the overhead, as L{xmeet.core.conversation.OfflineQueue} counts it.
"""

ENQUEUE = (
    _QUEUED_COST
    + """
local overhead = tonumber(ARGV[8])
if redis.call('EXISTS', KEYS[3]) == 0 then
  local bytes = 0
  for _, old in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    bytes = bytes + cost(old, overhead)
  end
  redis.call('SET', KEYS[3], bytes)
end
local length = redis.call('RPUSH', KEYS[2], ARGV[2])
local bytes = redis.call('INCRBY', KEYS[3], cost(ARGV[2], overhead))
while length > 1 and (length > tonumber(ARGV[3]) or bytes > tonumber(ARGV[7])) do
  local oldest = redis.call('LPOP', KEYS[2])
  bytes = redis.call('DECRBY', KEYS[3], cost(oldest, overhead))
  length = length - 1
end
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then
  for _, user in ipairs(redis.call('ZRANGE', KEYS[1], 0, extra - 1)) do
    redis.call('DEL', ARGV[6] .. user, ARGV[9] .. user)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
end
"""
)
"""
Queue an entry (KEYS: the index of queues, the queue, its byte count;
ARGV: user, entry, messages per user, users, score, prefix of queue keys,
bytes per user, L{xmeet.core.history.ENTRY_OVERHEAD}, prefix of byte count keys), bounded per
user in messages and in bytes (never dropping the newest) and in users.
The dropped queues' keys are built here, so this script needs a single
Redis, not Redis Cluster.
"""

REMOVE_QUEUED = (
    _QUEUED_COST
    + """
local overhead = tonumber(ARGV[2])
local wanted = {}
for index = 3, #ARGV do wanted[ARGV[index]] = true end
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local id = string.match(entry, '^(%S+) ')
  if id and wanted[id] then
    if redis.call('LREM', KEYS[2], 1, entry) > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
      redis.call('DECRBY', KEYS[3], cost(entry, overhead))
    end
  end
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
end
"""
)
"""
Remove the entries of the given message ids from a queue (KEYS: the index
of queues, the queue, its byte count; ARGV: user, L{xmeet.core.history.ENTRY_OVERHEAD}, ids),
and the emptied queue, with its count, from the index.
"""
