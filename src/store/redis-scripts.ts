/**
 * Lua scripts of the Redis session store, as string constants so the build copies no assets.
 *
 * Key layout, version 4 (every name starts `<prefix>v4:`, so a store never reads the keys of an older
 * layout as its own; those expire by their own TTLs):
 * - `u:{<tag>}` (hash), one per user, kept a listpack (Redis's compact encoding) by values of at most
 *   64 bytes (hash-max-listpack-value's default): `v` = `<version> <earliest expiresAt> <latest
 *   expiresAt>` of the records it holds, `u` the user (JSON); per session, under its key (11 bytes of
 *   its id's sha256, `sessionKey` in redis-codec.ts): `<key>i` the session id (JSON), `<key>s` the
 *   status `<state> <lastSeenAt> <expiresAt>`, and chunked (see `putChunks`): `<key>b` the immutable
 *   rest (JSON without its braces and without what the other fields say), `<key>t` its token ids,
 *   `<key>e` JSON `{endedAt, endedBy}` once ended (ignored while the status is live), `<key>w` the JSON
 *   warning of `onLimit: warn` (missing: none; read only while live). A longer value (a user or id
 *   over 64 bytes) only makes that user's hash a hashtable, as every hash was in version 2.
 * - `t:<bucket>` (hash), the token index, one of INDEX_BUCKETS (2^16) hashes a token id is placed in by
 *   its first 16 bits (`indexSlot` in redis-codec.ts): field, 20 characters of the id; value,
 *   `<tag>\n<key>\n<expiresAt in base 36>` (43 bytes), or `a\n<until>` for an anonymous id. An entry
 *   outlives its record as the token id's tombstone, for the index life (the longer of the
 *   retentions, see redis.ts) past its expiresAt; past its end it reads as absent. Once its record is
 *   gone, the bucket's next prune shortens it to `-\n-\n<expiresAt>` (12 bytes, `tombstoneOf`): a
 *   month of tombstones is most of the index. Redis 7.0 has no TTL
 *   per field, so a bucket's TTL reaches the latest end of its entries (plus a slack, so most writes
 *   leave it as it is), and dead entries are pruned by the writes that come every so often (both
 *   decided by each replica's memo of the buckets, see redis.ts). Version 3 had a key per token id:
 *   about 210 bytes each, against about 75 here at a million.
 * - `a:<ref>` (string), a User-Agent's text, one per distinct User-Agent (`agentRef`): a record's base
 *   holds `"a":"<ref>"` in its place (the raw User-Agent was the largest part of a record, stored in
 *   64-byte chunks). It lives as long as the latest record referring to it (AGENT).
 * - `live` (hash, one per prefix) counts live sessions by the minute of their expiresAt (field: the
 *   minute since the epoch, value: sessions). No commit writes it: each replica sends its commits'
 *   changes in batches (ADD_LIVE, see redis.ts), and COUNT_LIVE sums the future minutes. Version 2
 *   kept a zset of every live session here, written by every commit (5 commands, 118 bytes a session).
 *
 * Session ids and users are stored as JSON.stringify, and each token id as JSON.stringify(tokenId), one
 * per line (JSON never contains a raw newline). Lua never decodes JSON: it only joins these encodings, so
 * arbitrary strings (lone surrogates included) round-trip exactly and no cjson quirk (empty array
 * encoded as `{}`, 14-digit numbers) can corrupt a record.
 *
 * Records stay until `expiresAt + retention` (the retention keeps a tombstone, or an expired session,
 * readable so a late token learns why). Scripts receive `horizon = now - retention`: records whose
 * expiresAt <= horizon are pruned (only when the earliest in `v` says one is due: no scan otherwise),
 * and the user's hash expires when the last record's retention ends (PEXPIRE relative to the caller's
 * clock, so a skew between the replica's and Redis's clocks does not matter). A user with no records
 * left has no key: the version restarts at 0, which is harmless because version 0 always means "no
 * records".
 */

/**
 * A script and the command name the store gives it with ioredis's `defineCommand` (which sends it by
 * EVALSHA, and by EVAL on a connection that has not run it yet or answers NOSCRIPT). Every name starts
 * with `sg`, so none shadows a built-in command method of the client (TOUCH is one).
 */
export interface LuaScript {
  readonly name: `sg${string}`;
  readonly source: string;
}

/** Shared prelude: the user's `v` field and session statuses, pruning, the TTL, publishing. */
const HELPERS = `
local function num(n) return string.format('%.0f', n) end

-- v: version, earliest and latest expiresAt of the records in the hash (nil when none).
local function readMeta(raw)
  if not raw then return 0, nil, nil end
  local v, lo, hi = string.match(raw, '^(%d+) (%S*) (%S*)$')
  return tonumber(v) or 0, tonumber(lo), tonumber(hi)
end

local function meta(version, lo, hi)
  if not lo then return version .. '  ' end
  return version .. ' ' .. num(lo) .. ' ' .. num(hi)
end

-- <key>s: state, lastSeenAt, expiresAt (nil when the field is missing or malformed).
local function parseStatus(raw)
  if not raw then return nil end
  return string.match(raw, '^(%S+) (%S+) (%S+)$')
end

-- A session's key is 11 bytes: its fields are <key>i, <key>s, <key>b..., <key>t..., <key>e..., <key>w...
local KEY = 11

-- Chunked fields: <name>, <name>1, <name>2... each of at most 64 bytes (hash-max-listpack-value), so
-- the hash stays a listpack. The value is the chunks joined by newlines; a value is cut only at its
-- newlines (token ids one per line; JSON split by the store, see splitJson in redis-codec.ts).
local CHUNK = 64
local function chunkName(f, i) if i == 0 then return f end return f .. i end

-- Appends the fields of value's chunks to writes; returns how many.
local function putChunks(writes, f, value)
  local n, cur = 0, nil
  local function flush()
    writes[#writes + 1] = chunkName(f, n)
    writes[#writes + 1] = cur
    n = n + 1
  end
  for line in string.gmatch(value, '[^\\n]+') do
    if cur and #cur + 1 + #line <= CHUNK then
      cur = cur .. '\\n' .. line
    else
      if cur then flush() end
      cur = line
    end
  end
  if cur then flush() end
  return n
end

-- HMGET names of a chunked field's first READ chunks; joinChunks reads the others only when all were there.
local READ = 4
local function chunkNames(names, f)
  for i = 0, READ - 1 do names[#names + 1] = chunkName(f, i) end
end

-- The value of the chunks at reply[at..at+READ-1] (nil when none) and their count.
local function joinChunks(h, f, reply, at)
  local parts = {}
  for i = 0, READ - 1 do
    local c = reply[at + i]
    if not c then break end
    parts[#parts + 1] = c
  end
  if #parts == READ then
    while true do
      local c = redis.call('HGET', h, chunkName(f, #parts))
      if not c then break end
      parts[#parts + 1] = c
    end
  end
  if #parts == 0 then return nil, 0 end
  return table.concat(parts, '\\n'), #parts
end

local function hdel(h, names)
  for i = 1, #names, 1000 do redis.call('HDEL', h, unpack(names, i, math.min(i + 999, #names))) end
end

-- Chunks from..to-1 of a field (left over by a longer value).
local function dropChunks(h, f, from, to)
  local names = {}
  for i = from, to - 1 do names[#names + 1] = chunkName(f, i) end
  hdel(h, names)
end

-- Every field of the sessions whose keys are set in drop (from an HGETALL reply).
local function dropSessions(h, all, drop)
  local names = {}
  for i = 1, #all, 2 do
    if #all[i] > KEY and drop[string.sub(all[i], 1, KEY)] then names[#names + 1] = all[i] end
  end
  hdel(h, names)
end

-- Drops records whose expiresAt <= horizon. Returns the new bounds and the set of dropped keys.
local function prune(h, horizon)
  local all = redis.call('HGETALL', h)
  local lo, hi, dropped = nil, nil, {}
  for i = 1, #all, 2 do
    local f = all[i]
    if #f == KEY + 1 and string.sub(f, -1) == 's' then
      local _, _, exp = parseStatus(all[i + 1])
      local e = tonumber(exp)
      if e and e > horizon then
        if not lo or e < lo then lo = e end
        if not hi or e > hi then hi = e end
      else
        dropped[string.sub(f, 1, KEY)] = true
      end
    end
  end
  dropSessions(h, all, dropped)
  return lo, hi, dropped
end

-- The hash lives until the latest record's retention ends; with no record left it goes.
local function expire(h, hi, horizon)
  if not hi or hi - horizon <= 0 then
    redis.call('DEL', h)
    return
  end
  redis.call('PEXPIRE', h, num(math.ceil(hi - horizon)))
end

-- An expiresAt in base 36, as the token index stores it (encodeTokenRef in redis-codec.ts).
local function num36(n)
  n = math.ceil(n)
  if n == 0 then return '0' end
  local sign = ''
  if n < 0 then sign, n = '-', -n end
  local digits, out = '0123456789abcdefghijklmnopqrstuvwxyz', ''
  while n > 0 do
    local d = n % 36
    out = string.sub(digits, d + 1, d + 1) .. out
    n = (n - d) / 36
  end
  return sign .. out
end

-- The token index (see the layout above). An entry means something until its end: an anonymous id's
-- own (a\\n<until>), a session's expiresAt plus the index life (<tag>\\n<key>\\n<expiresAt>); nil
-- for a value that is neither (pruned as dead).
local function entryEnd(value, life)
  if string.sub(value, 1, 2) == 'a\\n' then return tonumber(string.sub(value, 3), 36) end
  local exp = tonumber(string.match(value, '\\n([0-9a-z]+)$') or '', 36)
  if exp then return exp + life end
  return nil
end

-- One entry. An anonymous one is written only where no entry means anything any more: a token id of a
-- session is never made anonymous.
local function indexEntry(b, field, value, anonymous, now, life)
  if anonymous then
    local old = redis.call('HGET', b, field)
    local e = old and entryEnd(old, life)
    if e and e > now then return end
  end
  redis.call('HSET', b, field, value)
end

-- A session's entry whose record is gone (its expiresAt at or before the horizon) says no more than
-- "dead from expiresAt": its tag and key name nothing any more. It is rewritten as the tombstone
-- -\\n-\\n<expiresAt> (TOMBSTONE in redis-codec.ts), 12 bytes instead of 43. That is the same shape, so a
-- replica of the release before reads it as it read the long form by then: no record, so dead.
local function tombstoneOf(value, horizon)
  local tag, exp = string.match(value, '^([^\\n]+)\\n[^\\n]+\\n([0-9a-z]+)$')
  if not tag or tag == '-' or tonumber(exp, 36) > horizon then return nil end
  return '-\\n-\\n' .. exp
end

-- After a bucket's writes: its TTL is made to reach want + slack unless the caller knows it reaches
-- want already (known, its memo), and never shortened (another replica may have set a longer one; a
-- new hash has none, PTTL -1), and, when prune is set, entries whose end has passed go and those whose
-- record is gone (horizon) become tombstones (after the writes, so the hash is never emptied and
-- recreated without a TTL).
local function indexBucket(b, now, want, known, slack, prune, life, horizon)
  if want > known then
    local px = math.ceil(want + slack - now)
    if redis.call('PTTL', b) < px then redis.call('PEXPIRE', b, num(px)) end
  end
  if prune then
    local all, gone, short = redis.call('HGETALL', b), {}, {}
    for i = 1, #all, 2 do
      local e = entryEnd(all[i + 1], life)
      if not e or e <= now then
        gone[#gone + 1] = all[i]
      else
        local t = tombstoneOf(all[i + 1], horizon)
        if t then
          short[#short + 1] = all[i]
          short[#short + 1] = t
        end
      end
    end
    hdel(b, gone)
    for i = 1, #short, 1000 do redis.call('HSET', b, unpack(short, i, math.min(i + 999, #short))) end
  end
end

-- at: the publisher's clock, so receivers can measure the channel's lag. ended, changed: JSON arrays or nil.
local function publish(channel, joined, at, ended, changed)
  local extra = ''
  if ended then extra = ',"ended":' .. ended end
  if changed then extra = extra .. ',"changed":' .. changed end
  redis.call('PUBLISH', channel, '{"tokenIds":[' .. joined .. '],"at":' .. at .. extra .. '}')
end
`;

/**
 * Compare-and-set commit of one user.
 * KEYS: the user's hash; unless on a Cluster, the index buckets of the new session's token ids, one
 *       per id (on a Cluster they live in other slots: the store writes them before the script with
 *       INDEX, see redis.ts).
 * ARGV: expectedVersion, publishedAt (stamped on the message), horizon, channel ('' to leave the
 *       message to the store), create ('1' or '0'), key, sid, base, state, lastSeenAt, expiresAt,
 *       tokens, user (JSON), index value ('' writes no entry), then the index's now, life (ms an entry
 *       lasts past its session's expiresAt), want (the entries' end), slack, and n, then per entry (n,
 *       one per bucket key): field, known (the store's memo of the bucket's TTL), prune ('1' or '');
 *       then per ended session: key, sid, state, end JSON (split); then per warned session (onLimit:
 *       warn): key, sid, 'w', warning JSON (split; '' clears it), applied to live sessions only and
 *       published as `changed` (nothing revoked).
 * Returns {1, newVersion, n, tokenIds, ended, changed, expiresAt of each session ended...} (the store
 * counts live sessions with them, see ADD_LIVE) or {0, currentVersion} on conflict
 * (nothing written). With no channel, n is the number of token ids invalidated and tokenIds, ended,
 * changed the message's three lists (their JSON items joined by commas); otherwise n is 0 and the three
 * are ''.
 */
export const COMMIT: LuaScript = {
  name: 'sgCommit',
  source: `${HELPERS}
local h = KEYS[1]
local publishedAt, horizon, channel = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local user = ARGV[13]
local indexAt = 20 + 3 * tonumber(ARGV[19])
-- One read: the version, whether the new session's key holds an earlier one, and for each session to
-- end or warn, its status, base and tokens.
local fields = {'v', ARGV[6] .. 'i'}
for i = indexAt, #ARGV, 4 do
  local k = ARGV[i]
  fields[#fields + 1] = k .. 's'
  chunkNames(fields, k .. 'b')
  chunkNames(fields, k .. 't')
end
local f = redis.call('HMGET', h, unpack(fields))
local version, lo, hi = readMeta(f[1])
if version ~= tonumber(ARGV[1]) then return {0, version} end
local dropped = {}
if lo and lo <= horizon then lo, hi, dropped = prune(h, horizon) end
-- The index entries, as on a Cluster before the rest: none is written by a commit that lost its race.
if ARGV[14] ~= '' then
  local now, life, want, slack = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
  for i = 2, #KEYS do
    local a = 20 + 3 * (i - 2)
    indexEntry(KEYS[i], ARGV[a], ARGV[14], false, now, life)
    indexBucket(KEYS[i], now, want, tonumber(ARGV[a + 1]), slack, ARGV[a + 2] == '1', life, horizon)
  end
end
local writes, invalid, ended, goneExp, done, changed = {}, {}, {}, {}, {}, {}
local count = 0
local j = 3
for i = indexAt, #ARGV, 4 do
  local k, sid = ARGV[i], ARGV[i + 1]
  local state, seen, exp = parseStatus(f[j])
  local base = joinChunks(h, k .. 'b', f, j + 1) or ''
  local t = joinChunks(h, k .. 't', f, j + 1 + READ) or ''
  j = j + 1 + 2 * READ
  if ARGV[i + 2] == 'w' then
    if state == 'live' and not dropped[k] and not done[k] then
      local _, old = joinChunks(h, k .. 'w', redis.call('HMGET', h, k .. 'w', k .. 'w1', k .. 'w2', k .. 'w3'), 1)
      -- A cleared mark leaves no field behind.
      dropChunks(h, k .. 'w', putChunks(writes, k .. 'w', ARGV[i + 3]), old)
      changed[#changed + 1] = '{"id":' .. sid .. ',"t":[' .. (string.gsub(t, '\\n', ',')) .. ']}'
    end
  -- Only a live session ends; ending a tombstone again keeps its first reason.
  elseif state == 'live' and not dropped[k] and not done[k] then
    done[k] = true
    goneExp[#goneExp + 1] = exp
    writes[#writes + 1] = k .. 's'
    writes[#writes + 1] = ARGV[i + 2] .. ' ' .. seen .. ' ' .. exp
    putChunks(writes, k .. 'e', ARGV[i + 3])
    if t ~= '' then
      local joined, lines = string.gsub(t, '\\n', ',')
      count = count + lines + 1
      invalid[#invalid + 1] = joined
      -- The record as committed (JSON fragments joined, never decoded), so receivers need no read.
      local rest = string.gsub(base, '\\n', '')
      if rest ~= '' then rest = ',' .. rest end
      local b = '{"id":' .. sid .. ',"user":' .. user .. ',"expiresAt":' .. exp .. rest .. '}'
      ended[#ended + 1] = '{"b":' .. b .. ',"s":"' .. ARGV[i + 2] .. '","e":' .. (string.gsub(ARGV[i + 3], '\\n', ''))
        .. ',"l":' .. seen .. ',"t":[' .. joined .. ']}'
    end
  end
end
if ARGV[5] == '1' then
  local k, exp = ARGV[6], tonumber(ARGV[11])
  -- An earlier session of the same id (rare): none of its fields may read as this one's.
  if f[2] and not dropped[k] then
    local all, mine = redis.call('HGETALL', h), {}
    mine[k] = true
    dropSessions(h, all, mine)
  end
  writes[#writes + 1] = 'u'
  writes[#writes + 1] = user
  writes[#writes + 1] = k .. 'i'
  writes[#writes + 1] = ARGV[7]
  writes[#writes + 1] = k .. 's'
  writes[#writes + 1] = ARGV[9] .. ' ' .. ARGV[10] .. ' ' .. ARGV[11]
  putChunks(writes, k .. 'b', ARGV[8])
  putChunks(writes, k .. 't', ARGV[12])
  if not lo or exp < lo then lo = exp end
  if not hi or exp > hi then hi = exp end
end
version = version + 1
writes[#writes + 1] = 'v'
writes[#writes + 1] = meta(version, lo, hi)
redis.call('HSET', h, unpack(writes))
expire(h, hi, horizon)
-- No channel: the store publishes the message itself, batched with other commits' (redis-publisher.ts).
local deferred = {0, '', '', ''}
if #invalid > 0 or #changed > 0 then
  if channel ~= '' then
    local endedJson, changedJson = nil, nil
    if #invalid > 0 then endedJson = '[' .. table.concat(ended, ',') .. ']' end
    if #changed > 0 then changedJson = '[' .. table.concat(changed, ',') .. ']' end
    publish(channel, table.concat(invalid, ','), publishedAt, endedJson, changedJson)
  else
    deferred = {count, table.concat(invalid, ','), table.concat(ended, ','), table.concat(changed, ',')}
  end
end
local reply = {1, version, deferred[1], deferred[2], deferred[3], deferred[4]}
for _, exp in ipairs(goneExp) do reply[#reply + 1] = exp end
return reply
`,
};

/**
 * Adds token ids to a live session: its first `pinned` ids (issued by its login) always stay listed, and
 * at most maxTokens others, the oldest dropped from the list. A dropped id keeps its index key (it stays
 * the session's until the session expires), so nothing is published.
 * KEYS: the user's hash; unless on a Cluster, the index buckets of the new token ids, one per id
 *       (written here, with the session's expiresAt; on a Cluster the store writes them first).
 * ARGV: key, maxTokens, now, horizon, new tokens (lines), pinned, tag, index life (ms past
 *       expiresAt), slack, then per bucket key: field, known, prune (see COMMIT).
 * Returns nil when the session is not live, else {sid, user, base, state, lastSeenAt, expiresAt,
 * tokens, warning}.
 */
export const ADD_TOKENS: LuaScript = {
  name: 'sgAddTokens',
  source: `${HELPERS}
local h = KEYS[1]
local k, now, horizon = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])
local pinned = tonumber(ARGV[6] or '0')
local names = {k .. 's', 'v', k .. 'i', 'u'}
chunkNames(names, k .. 't')
chunkNames(names, k .. 'b')
chunkNames(names, k .. 'w')
local f = redis.call('HMGET', h, unpack(names))
local state, seen, exp = parseStatus(f[1])
if state ~= 'live' or tonumber(exp) <= now then return false end
if #KEYS > 1 then
  local life, want = tonumber(ARGV[8]), tonumber(exp) + tonumber(ARGV[8])
  if want > now then
    local ref = ARGV[7] .. '\\n' .. k .. '\\n' .. num36(tonumber(exp))
    for i = 2, #KEYS do
      local a = 10 + 3 * (i - 2)
      indexEntry(KEYS[i], ARGV[a], ref, false, now, life)
      indexBucket(KEYS[i], now, want, tonumber(ARGV[a + 1]), tonumber(ARGV[9]), ARGV[a + 2] == '1', life, horizon)
    end
  end
end
local listed, oldChunks = joinChunks(h, k .. 't', f, 5)
local fresh, isFresh = {}, {}
for tok in string.gmatch(ARGV[5], '[^\\n]+') do
  if not isFresh[tok] then
    isFresh[tok] = true
    fresh[#fresh + 1] = tok
  end
end
local head, isHead, rotated = {}, {}, {}
local i = 0
for tok in string.gmatch(listed or '', '[^\\n]+') do
  i = i + 1
  if i <= pinned then
    head[#head + 1] = tok
    isHead[tok] = true
  elseif not isFresh[tok] then
    rotated[#rotated + 1] = tok
  end
end
for _, tok in ipairs(fresh) do
  if not isHead[tok] then rotated[#rotated + 1] = tok end
end
local drop = #rotated - tonumber(ARGV[2])
local kept = head
for j, tok in ipairs(rotated) do
  if j > drop then kept[#kept + 1] = tok end
end
local tokens = table.concat(kept, '\\n')
local writes = {}
local n = putChunks(writes, k .. 't', tokens)
if #writes > 0 then redis.call('HSET', h, unpack(writes)) end
dropChunks(h, k .. 't', n, oldChunks)
local version, lo, hi = readMeta(f[2])
if lo and lo <= horizon then
  lo, hi = prune(h, horizon)
  redis.call('HSET', h, 'v', meta(version, lo, hi))
end
expire(h, hi, horizon)
local base = joinChunks(h, k .. 'b', f, 5 + READ) or ''
local warning = joinChunks(h, k .. 'w', f, 5 + 2 * READ) or ''
return {f[3] or '', f[4] or '', base, state, seen, exp, tokens, warning}
`,
};

/**
 * Index entries of one bucket, for what COMMIT and ADD_TOKENS cannot write themselves: a Cluster's
 * entries (other slots than the user's), anonymous token ids.
 * KEYS: the bucket. ARGV: anonymous ('1' or ''), now, life, want, known, slack, prune ('1' or ''),
 * horizon (records whose expiresAt is at or before it are gone), then field, value pairs (see COMMIT).
 */
export const INDEX: LuaScript = {
  name: 'sgIndex',
  source: `${HELPERS}
local anonymous, now, life = ARGV[1] == '1', tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 9, #ARGV, 2 do indexEntry(KEYS[1], ARGV[i], ARGV[i + 1], anonymous, now, life) end
indexBucket(KEYS[1], now, tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == '1', life, tonumber(ARGV[8]))
return 1
`,
};

/**
 * A User-Agent's text (`a:<ref>`, see `agentRef` in redis-codec.ts), made to live at least PX: written
 * only where there is none (an existing text is never rewritten), its TTL only ever lengthened (every
 * session referring to it may need it). KEYS: the key. ARGV: the text, PX.
 */
export const AGENT: LuaScript = {
  name: 'sgAgent',
  source: `
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif ttl < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`,
};

/**
 * Moves lastSeenAt of a live, unexpired session forward (never back).
 * KEYS: the user's hash. ARGV: key, at, now. Returns 1 when written.
 */
export const TOUCH: LuaScript = {
  name: 'sgTouch',
  source: `${HELPERS}
local field = ARGV[1] .. 's'
local state, seen, exp = parseStatus(redis.call('HGET', KEYS[1], field))
if state ~= 'live' or tonumber(exp) <= tonumber(ARGV[3]) then return 0 end
if tonumber(ARGV[2]) <= tonumber(seen) then return 0 end
redis.call('HSET', KEYS[1], field, 'live ' .. ARGV[2] .. ' ' .. exp)
return 1
`,
};

/**
 * Adds a replica's batch of live-session deltas to the per-prefix count (see the layout above): each
 * pair a bucket (expiresAt in whole LIVE_BUCKET_MS) and the sessions it gained (+) or lost (-). Buckets
 * that are not in the future any more are left out: the count ignores them. The key expires with its
 * latest bucket. KEYS: the count's hash. ARGV: the current bucket, now (ms), the bucket width (ms),
 * then bucket, delta pairs.
 */
export const ADD_LIVE: LuaScript = {
  name: 'sgAddLive',
  source: `
local current, now, width = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local last = nil
for i = 4, #ARGV, 2 do
  local b = tonumber(ARGV[i])
  if b > current then
    if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) == 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
    if not last or b > last then last = b end
  end
end
if last then
  local want = (last + 1) * width - now
  if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], string.format('%.0f', want)) end
end
return 1
`,
};

/**
 * The number of live sessions of a prefix: the sum of the future buckets; the others are dropped. One
 * HGETALL of at most maxAge / LIVE_BUCKET_MS fields (720 for 12 hours). KEYS: the count's hash.
 * ARGV: the current bucket.
 */
export const COUNT_LIVE: LuaScript = {
  name: 'sgCountLive',
  source: `
local current = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local n, old = 0, {}
for i = 1, #all, 2 do
  if tonumber(all[i]) > current then n = n + tonumber(all[i + 1]) else old[#old + 1] = all[i] end
end
for i = 1, #old, 1000 do redis.call('HDEL', KEYS[1], unpack(old, i, math.min(i + 999, #old))) end
return n
`,
};

/** Every script, each defined on the store's client once (see redis.ts). */
export const SCRIPTS: readonly LuaScript[] = [COMMIT, ADD_TOKENS, INDEX, AGENT, TOUCH, ADD_LIVE, COUNT_LIVE];
