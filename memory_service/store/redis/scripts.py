"""The Lua scripts of the Redis store: each write is one atomic script.

Every key a script takes carries the namespace's hash tag, so each runs on
one node of a Redis Cluster too (see store.py for the key layout).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1, for EVALSHA."""

    text: str
    sha: str = ""

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


# The fields every script reads of a pattern hash, in this order.
_LUA_COMMON = """
local FIELDS = {'fingerprint', 'owner_guard', 'expire_us', 'body', 'sealed'}
local function live(found, now)
  if not found[1] then return false end
  local expire = tonumber(found[3] or '0')
  return not (expire > 0 and expire <= now)
end
local function sealed_key(base, owner, id)
  return base .. 'sealed:' .. #owner .. ':' .. owner .. ':' .. id
end
"""

# KEYS: shared pattern hash, log stream, namespace epoch, the writer's sealed
# hash, the id's owners set (all one namespace, so one hash tag and one slot).
# ARGV: id, body, fingerprint, replace (0/1), a new epoch in case the namespace has none,
# sealed (0/1), owner guard, expire_us, the writer, now (microseconds), the key base
# (`<prefix>:{<ns>}:`). The write sees the writer's own sealed version and the
# shared one, never another owner's: dedupe, conflict and replace apply to those.
# An expired version counts as absent.
PUT_SCRIPT = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[10])
local writer = ARGV[9]
local shared = redis.call('HMGET', KEYS[1], unpack(FIELDS))
local own = redis.call('HMGET', KEYS[4], unpack(FIELDS))
local legacy = shared[2] and shared[2] ~= '' and shared[2] or nil  -- sealed where shared goes
local own_at_shared = legacy == writer and not own[1]
if own_at_shared then own = shared end
local seen_own = live(own, now)
local seen_shared = not legacy and live(shared, now)
if seen_own and own[1] == ARGV[3] then
  return {'deduped', own[4], own[5] or '0'}
end
if seen_shared and shared[1] == ARGV[3] then
  return {'deduped', shared[4], shared[5] or '0'}
end
if (seen_own or seen_shared) and ARGV[4] ~= '1' then
  return {'conflict'}
end
local created = redis.call('SET', KEYS[3], ARGV[5], 'NX') and 1 or 0
local target = KEYS[1]
if ARGV[6] == '1' then
  target = KEYS[4]
  if seen_shared or own_at_shared then redis.call('DEL', KEYS[1]) end
  redis.call('SADD', KEYS[5], writer)
else
  if legacy and legacy ~= writer then
    redis.call('RENAME', KEYS[1], sealed_key(ARGV[11], legacy, ARGV[1]))
    redis.call('SADD', KEYS[5], legacy)
  end
  if own[1] and not own_at_shared then
    redis.call('DEL', KEYS[4])
    redis.call('SREM', KEYS[5], writer)
  end
end
redis.call('HSET', target, 'body', ARGV[2], 'fingerprint', ARGV[3], 'sealed', ARGV[6],
  'owner_guard', ARGV[7], 'expire_us', ARGV[8])
redis.call('XADD', KEYS[2], '*', 'op', 'put', 'id', ARGV[1], 'fingerprint', ARGV[3])
if seen_own or seen_shared then
  return {'replaced', created}
end
return {'stored', created}
"""
)

# KEYS: shared pattern hash, log stream, the sealed hash of ARGV[2], the id's owners set.
# ARGV: id, viewer (or, to purge, the owner of the version: "" for the shared one),
# now (microseconds), mode.
# Mode "delete": the live version the viewer reads first (their own sealed
# one, then the shared one). Mode "purge": that owner's version, only if
# expired, so replicas purging at once delete it once, and never a pattern
# written again since.
DELETE_SCRIPT = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[3])
local who = ARGV[2]
local function drop(key, sealed)
  redis.call('DEL', key)
  if sealed then redis.call('SREM', KEYS[4], who) end
  redis.call('XADD', KEYS[2], '*', 'op', 'delete', 'id', ARGV[1])
  return 1
end
local own = who ~= '' and redis.call('HMGET', KEYS[3], unpack(FIELDS)) or {false}
local shared = redis.call('HMGET', KEYS[1], unpack(FIELDS))
local shared_is_whos = shared[1] and (shared[2] or '') == who
if ARGV[4] == 'purge' then
  if own[1] and not live(own, now) then return drop(KEYS[3], true) end
  if shared_is_whos and not live(shared, now) then return drop(KEYS[1], false) end
  return 0
end
if live(own, now) then return drop(KEYS[3], true) end
if live(shared, now) and ((shared[2] or '') == '' or shared_is_whos) then
  return drop(KEYS[1], false)
end
return 0
"""
)

# KEYS: pattern hash, log stream. ARGV: id, the body as read, the new envelope,
# owner guard, expire_us. Compare-and-set: a write since the read wins. The
# logged put makes every replica's cache take the new envelope.
RESEAL_SCRIPT = """
if redis.call('HGET', KEYS[1], 'body') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'sealed', '1', 'owner_guard', ARGV[4],
  'expire_us', ARGV[5])
local digest = redis.call('HGET', KEYS[1], 'fingerprint')
redis.call('XADD', KEYS[2], '*', 'op', 'put', 'id', ARGV[1], 'fingerprint', digest)
return 1
"""

# KEYS: log stream, namespace epoch. ARGV: first id (exclusive: "(<id>"), count.
# Returns the epoch (nil if none) and the entries, read at one instant.
LOG_SCRIPT = """
local epoch = redis.call('GET', KEYS[2])
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
return {epoch, entries}
"""

# KEYS: the entry, the session's key set. ARGV: the entry JSON, TTL in ms, the key.
# Redis expires the entry; the set lives as long as its longest entry.
# KEYS: the owner's private entry and its session set, the shared entry and
# its session set. ARGV: entry JSON, TTL ms, key, owner, "1" to share.
# Returns 0 (nothing written) when another owner's shared entry holds the key.
# The owner's entry under the other visibility moves rather than doubles.
SET_CONTEXT_SCRIPT = """
local held = redis.call('GET', KEYS[3])
local holder = held and cjson.decode(held)['o']
local mine, mine_set, gone, gone_set = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if ARGV[5] == '1' then
  if holder and holder ~= ARGV[4] then return 0 end
  mine, mine_set, gone, gone_set = KEYS[3], KEYS[4], KEYS[1], KEYS[2]
elseif holder ~= ARGV[4] then
  gone = nil
end
redis.call('SET', mine, ARGV[1], 'PX', ARGV[2])
redis.call('SADD', mine_set, ARGV[3])
local left = redis.call('PTTL', mine_set)
if left < tonumber(ARGV[2]) then redis.call('PEXPIRE', mine_set, ARGV[2]) end
if gone then
  redis.call('DEL', gone)
  redis.call('SREM', gone_set, ARGV[3])
end
return 1
"""

# KEYS: entries, then their session set last. ARGV: owner, then each entry's key.
# Deletes the entries the owner holds; returns how many.
DELETE_CONTEXT_SCRIPT = """
local deleted = 0
local set = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local raw = redis.call('GET', KEYS[i])
  if raw and cjson.decode(raw)['o'] == ARGV[1] then
    redis.call('DEL', KEYS[i])
    redis.call('SREM', set, ARGV[i + 1])
    deleted = deleted + 1
  end
end
return deleted
"""

# KEYS: shared pattern hashes (one namespace, so one slot). ARGV: the key base, then
# the ids of KEYS. Returns, per id, every version under it: [body, fingerprint,
# sealed, owner guard] each (the shared one, then each owner's sealed one).
FETCH_SCRIPT = (
    _LUA_COMMON
    + """
local found = {}
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 1]
  local versions = {}
  local shared = redis.call('HMGET', key, 'body', 'fingerprint', 'sealed', 'owner_guard')
  if shared[1] then versions[#versions + 1] = shared end
  for _, owner in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'owners:' .. id)) do
    local own = redis.call('HMGET', sealed_key(ARGV[1], owner, id), 'body', 'fingerprint',
      'sealed', 'owner_guard')
    if own[1] then versions[#versions + 1] = own end
  end
  found[i] = versions
end
return found
"""
)
