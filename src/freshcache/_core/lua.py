"""The Lua scripts freshcache runs in Redis.

Most scripts touch keys of one hash slot only (a data key and its lease,
or one tag set), so they run unchanged on Redis Cluster. The scripts that
reach the other live versions of a prefix (``LIVE``, ``LIVE_VERSIONS``,
``INVALIDATE``, ``BUMP``) compute key names inside the script, from the
registry of live versions: Redis Cluster refuses that, so they run on a
single Redis (or a primary with replicas); on a cluster the store runs
``LIVE`` on hash-tagged registry names (one slot) and does the work of
``INVALIDATE`` and ``BUMP`` in single-slot steps
(``AsyncRedisStore._cluster_invalidate``, ``_cluster_bump``). Tag
invalidation needs no script of its own: per live version, SMEMBERS, then
the members' deletions, then SREM of exactly those members (see
``AsyncRedisStore.invalidate_tags``).
"""

from __future__ import annotations

from typing import Final

# KEYS: data, lease. ARGV: token, px, the longest value read. A miss's second
# look, and its lease, in one round trip: the value if someone filled it
# meanwhile, else the lease if it is free (1), else 0 (another caller holds
# it). A value longer than the limit is never sent: it is removed (-1).
ACQUIRE: Final = """
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[3]) then
  redis.call('UNLINK', KEYS[1])
  return -1
end
if size > 0 then return redis.call('GET', KEYS[1]) end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# KEYS: data, lease, pending write. ARGV: token, value, px (0: no expiry),
# and optionally a channel and a message to publish once stored (the fill
# notice that wakes waiters in other processes). Store only if the lease taken
# before the loader ran is still ours (an invalidation deletes it): 1; else
# 0. A write-behind write of the key not yet in the database means the
# loader read an older row: 2, nothing stored. The SET comes before the
# lease's DEL: a script's first write is where Redis checks maxmemory, and
# a script that has written is not checked again.
FILL: Final = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DEL', KEYS[2])
  return 2
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
redis.call('DEL', KEYS[2])
if ARGV[4] then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
"""

# KEYS: data, lease. ARGV: value, px. A direct write revokes any lease, so a
# loader that started earlier cannot overwrite it. The SET comes first (see
# FILL: so Redis refuses it when over maxmemory).
PUT: Final = """
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: data, lease. ARGV: the bytes read before ('' : the key was absent),
# the new value, px (0: no expiry; -1: remove the key). A read-modify-write's
# write (add, incr, touch): only if the key still holds exactly what was read
# (1), else 0 and nothing changes (the caller reads again). Like PUT, it
# revokes any fill lease, so a loader that started earlier cannot overwrite
# it; the SET comes first (see FILL).
SWAP: Final = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return 0 end
if ARGV[3] == '-1' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: lease. ARGV: token. Give a lease back without filling.
RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lease. ARGV: token, px. Extend the lease only while it is still
# ours: 1; else (filled, given back, revoked or expired) 0.
RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: tag set. ARGV: member, px (0: the member never expires). The set never
# expires before its longest-lived member: its TTL only grows, and a member
# without expiry makes it persistent.
REGISTER: Final = """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[1])
local px = tonumber(ARGV[2])
if px == 0 then
  redis.call('PERSIST', KEYS[1])
  return 1
end
local ttl = redis.call('PTTL', KEYS[1])
if existed == 0 or (ttl >= 0 and ttl < px) then
  redis.call('PEXPIRE', KEYS[1], px)
end
return 1
"""

# KEYS: tag set, its taken set ("{tag set}:taken", the same slot). A tag
# invalidation's first step: move every member of the tag set into the taken
# set, and return the taken set's members (with those an earlier invalidation
# took but did not finish). The tag set is then empty, so a fill that
# registers its key again from here on (after the epoch bump: a fresh value)
# stays registered; the taken set keeps what is being deleted until the
# deletions are done (``SREM`` of exactly those members), so a failure
# part-way leaves them for the next invalidation of the tag. The taken set
# lives as long as the tag set would have (its members' entries), never less.
TAKE: Final = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl ~= -2 then
  local before = redis.call('PTTL', KEYS[2])
  redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])
  redis.call('DEL', KEYS[1])
  if ttl ~= -1 and before ~= -1 then
    redis.call('PEXPIRE', KEYS[2], math.max(ttl, before))
  end
end
return redis.call('SMEMBERS', KEYS[2])
"""

# KEYS: per write: data, lease, stream, pending write. ARGV: backlog limit,
# bus channel, bus message, pending marker px, then per write: envelope ('' :
# not cacheable, drop the key), px, key, JSON value, the cache's head, the
# key's namespace, the key under namespace version 0 (so the worker can find
# the key's name after a bump). Write-behind's enqueue, all or nothing:
# refuse (FCBACKLOG) if a stream would hold more than the limit, else per
# write append it to its partition's stream, update the cache as PUT does and
# mark the key's write pending (no fill until the worker applied it); then
# tell every L1. Returns the entry ids (versions).
ENQUEUE: Final = """
local n = #KEYS / 4
local limit = tonumber(ARGV[1])
local adding = {}
for i = 0, n - 1 do
  local stream = KEYS[i * 4 + 3]
  adding[stream] = (adding[stream] or 0) + 1
end
for stream, count in pairs(adding) do
  if redis.call('XLEN', stream) + count > limit then
    return redis.error_reply('FCBACKLOG write-behind backlog is full')
  end
end
local ids = {}
for i = 0, n - 1 do
  local data, lease, stream = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3]
  local a = i * 7 + 5
  local envelope, px = ARGV[a], ARGV[a + 1]
  ids[i + 1] = redis.call(
    'XADD', stream, '*', 'k', ARGV[a + 2], 'v', ARGV[a + 3], 'd', data,
    'h', ARGV[a + 4], 'n', ARGV[a + 5], 'b', ARGV[a + 6])
  redis.call('SET', KEYS[i * 4 + 4], ids[i + 1], 'PX', ARGV[4])
  redis.call('DEL', lease)
  if envelope == '' then
    redis.call('DEL', data)
  elseif px == '0' then
    redis.call('SET', data, envelope)
  else
    redis.call('SET', data, envelope, 'PX', px)
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return ids
"""

# KEYS: per key: pending-write marker, lease, data. ARGV: bus channel, then per
# key: the entry id just applied ('' : none), the bus message that drops the
# key. After the database commit, for each key a committed write was put
# under, and for the key's name now if a bump moved it:
# * the marker names that write: clear it, so loaders may fill the key
#   again, and revoke the key's lease (a loader that read the row before the
#   commit must not store it once the mark is gone);
# * no marker (evicted, removed, or the key is a bump's new name, never
#   marked): a loader may have cached the database's row from before the
#   commit; drop the key and its lease, and tell every L1;
# * an older write's marker (only on a cluster, where a put's steps can
#   interleave with another put's and die half-way): the cached value may be
#   that older write's; drop it as above, and the marker;
# * a newer write's marker (or a put in progress on a cluster, whose marker
#   starts with '~'): leave the key to that write.
# Returns how many keys it dropped. An empty channel publishes nothing: on a
# cluster the caller publishes the dropped keys from the bus channel's node.
APPLIED: Final = """
local function older(a, b)
  local da, db = string.find(a, '-', 1, true), string.find(b, '-', 1, true)
  if not da or not db then return false end
  local ma, mb = tonumber(string.sub(a, 1, da - 1)), tonumber(string.sub(b, 1, db - 1))
  local sa, sb = tonumber(string.sub(a, da + 1)), tonumber(string.sub(b, db + 1))
  if not (ma and mb and sa and sb) then return false end
  return ma < mb or (ma == mb and sa < sb)
end
local dropped = 0
for i = 0, #KEYS / 3 - 1 do
  local mark, lease, data = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local id, message = ARGV[i * 2 + 2], ARGV[i * 2 + 3]
  local marked = redis.call('GET', mark)
  if not marked or older(marked, id) then
    redis.call('DEL', data, lease, mark)
    if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], message) end
    dropped = dropped + 1
  elseif marked == id then
    redis.call('DEL', mark, lease)
  end
end
return dropped
"""

# Write-behind's enqueue on a Redis Cluster, where the stream and the key
# live in different slots: three single-slot steps, in this order (see
# ``AsyncStreamStore._cluster_enqueue``).
#
# 1. CLUSTER_HOLD. KEYS: pending write, lease, data. ARGV: a placeholder mark
#    ('~' and a token: never an entry id), its px. Mark the key "a write is
#    on its way" (no fill from now on: the database lacks the write), revoke
#    any fill in flight and drop the cached value (the older one must not be
#    served once the write may be queued). The mark keeps a longer expiry it
#    already had: an earlier write still queued keeps blocking fills.
CLUSTER_HOLD: Final = """
local px = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > px then px = left end
redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
redis.call('DEL', KEYS[2], KEYS[3])
return 1
"""

# 2. CLUSTER_APPEND. KEYS: one stream. ARGV: backlog limit, then per write the
#    fields ENQUEUE writes (key, JSON value, data key, head, namespace, base).
#    Refuse (FCBACKLOG) if the stream would hold more than the limit, else
#    append every write. Returns the entry ids (versions).
CLUSTER_APPEND: Final = """
local n = (#ARGV - 1) / 6
if redis.call('XLEN', KEYS[1]) + n > tonumber(ARGV[1]) then
  return redis.error_reply('FCBACKLOG write-behind backlog is full')
end
local ids = {}
for i = 0, n - 1 do
  local a = i * 6 + 2
  ids[i + 1] = redis.call(
    'XADD', KEYS[1], '*', 'k', ARGV[a], 'v', ARGV[a + 1], 'd', ARGV[a + 2],
    'h', ARGV[a + 3], 'n', ARGV[a + 4], 'b', ARGV[a + 5])
end
return ids
"""

# 3. CLUSTER_STORE. KEYS: pending write, lease, data. ARGV: the entry id, the
#    envelope ('': not cacheable), its px (0: none), the mark's px. Once the
#    write is in its stream: mark the key with the write's id and store the
#    value as PUT does, unless the mark names a newer write of the key (two
#    puts of one key raced: the one with the higher id, which the database
#    keeps, must be what the cache keeps). Returns 1 if stored, else 0.
CLUSTER_STORE: Final = """
local marked = redis.call('GET', KEYS[1])
if marked and string.sub(marked, 1, 1) ~= '~' then
  local function split(id)
    local dash = string.find(id, '-', 1, true)
    if not dash then return -1, -1 end
    return tonumber(string.sub(id, 1, dash - 1)) or -1,
           tonumber(string.sub(id, dash + 1)) or -1
  end
  local oms, oseq = split(marked)
  local ms, seq = split(ARGV[1])
  if oms > ms or (oms == ms and oseq > seq) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('DEL', KEYS[2])
if ARGV[2] == '' then
  redis.call('DEL', KEYS[3])
elseif ARGV[3] == '0' then
  redis.call('SET', KEYS[3], ARGV[2])
else
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

# KEYS: a stream. ARGV: the group, then entry ids. Acknowledge the entries and
# delete them in one step (an acknowledged entry left in the stream would
# count in the backlog forever). Returns how many XACK acknowledged.
ACK: Final = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return acked
"""

# KEYS: the entry's stream, the dead-letter stream, the queue's meta hash.
# ARGV: the group, the entry id, then the dead letter's field/value pairs.
# Dead-letter an entry once: only the call whose XACK acknowledges it copies
# it to the dead-letter stream, deletes it and counts it. Two workers can hold
# the same entry (one claimed it from the other while the other was slow);
# the second finds it acknowledged and does nothing.
DEAD_LETTER: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'dead_lettered', 1)
return 1
"""

# The live versions of a prefix other than ARGV own, read from the registry
# (KEYS[1] of the scripts below) at Redis server time, so client clocks do
# not matter. Shared by the scripts that reach every live version.
_OTHERS = """
local function others(registry, own)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local found = {}
  local entries = redis.call('HGETALL', registry)
  for i = 1, #entries, 2 do
    if entries[i] ~= own and tonumber(entries[i + 1]) > now then
      found[#found + 1] = entries[i]
    end
  end
  return found
end
"""

# KEYS: the registry of live versions, the lapsed versions. ARGV: version,
# entry ttl (ms), retention (ms). Register (or refresh) ``version`` until
# now + ttl; drop entries expired longer than the retention ago. An entry
# of ``version`` found expired means its keys missed invalidations: it is
# marked lapsed (the mark: the time it was found). Both hashes expire a
# retention after the last registration (nothing freshcache writes stays
# forever). Returns the server's TIME (seconds, microseconds: each process
# estimates the server's clock from it) and the version's lapsed mark (its
# keys must be cleared before they are read), or false.
LIVE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = nil
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local expiry = tonumber(entries[i + 1]) or 0
  if entries[i] == ARGV[1] then
    mine = expiry
  elseif expiry + tonumber(ARGV[3]) < now then
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]))
if mine ~= nil and mine <= now then
  redis.call('HSET', KEYS[2], ARGV[1], now)
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]))
end
return {t[1], t[2], redis.call('HGET', KEYS[2], ARGV[1])}
"""

# KEYS: the lapsed versions. ARGV: version, the mark its keys were cleared
# for. Remove the mark, unless the version lapsed again meanwhile.
CLEARED: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

# KEYS: the registry. ARGV: own version. The other live versions.
LIVE_VERSIONS: Final = (
    _OTHERS
    + """
return others(KEYS[1], ARGV[1])
"""
)

# KEYS: the registry. ARGV: prefix, own version, '1' to delete the keys
# given under the own version too ('0': only under the others), then per
# key: the full key under the own version, its namespace, the remainder
# after the namespace (and its ~N). Delete each key and its lease, then the
# same relative key under every other live version, at that version's
# namespace version, and its lease: in one step with reading the registry,
# so a version that registered before this ran is always covered. Returns
# how many keys and leases of the own version were deleted.
INVALIDATE: Final = (
    _OTHERS
    + """
local versions = others(KEYS[1], ARGV[2])
local removed = 0
for i = 4, #ARGV, 3 do
  local full, ns, rest = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if ARGV[3] == '1' then
    removed = removed + redis.call('DEL', full, '{' .. full .. '}:lease')
  end
  for _, v in ipairs(versions) do
    local head = ARGV[1] .. ':' .. v .. ':'
    local n = redis.call('GET', head .. '!ns:' .. ns)
    local key = head .. ns
    if n and (tonumber(n) or 0) > 0 then key = key .. '~' .. n end
    key = key .. rest
    redis.call('DEL', key, '{' .. key .. '}:lease')
  end
end
return removed
"""
)

# KEYS: the registry. ARGV: prefix, own version, namespace. Bump the
# namespace's version under the own version and every other live one (each
# orphans its own keys of the namespace). Returns the own new version.
BUMP: Final = (
    _OTHERS
    + """
local suffix = '!ns:' .. ARGV[3]
local mine = redis.call('INCR', ARGV[1] .. ':' .. ARGV[2] .. ':' .. suffix)
for _, v in ipairs(others(KEYS[1], ARGV[2])) do
  redis.call('INCR', ARGV[1] .. ':' .. v .. ':' .. suffix)
end
return mine
"""
)
