/**
 * Lua scripts of the Redis session store, as string constants so the build copies no assets.
 *
 * Layout of one user (all keys share the hash tag `{u:<tag>}`, so every script touches one slot):
 * - `sessions` (hash): `v` = version; per session `b|<sid>` immutable JSON, `s|<sid>` state,
 *   `l|<sid>` lastSeenAt, `e|<sid>` JSON `{endedAt, endedBy}` once ended, `t|<sid>` token ids.
 * - `expiry` (zset): sid scored by expiresAt, to prune records once their retention is over.
 * - `live` (set): sids of live sessions, so readUser never reads tombstones.
 *
 * Besides: `<prefix>t:<tokenId>` (string) maps a token id to `<tag>\n<sid>\n<expiresAt>` and outlives
 * the record as its tombstone (see redis.ts); `<prefix>live` (zset, one per prefix) holds `<tag>\n<sid>`
 * of every live session scored by its expiresAt, so counting live sessions is one ZCOUNT-like read
 * instead of a scan. It is written by COMMIT itself where it shares the script's node (standalone,
 * Sentinel); on a Cluster it lives in another slot, so the store updates it with TRACK_LIVE right after
 * each commit.
 *
 * `<sid>` is JSON.stringify(sessionId) and each token id is stored as JSON.stringify(tokenId), one per
 * line (JSON never contains a raw newline). Lua never decodes JSON: it only joins these encodings, so
 * arbitrary strings (lone surrogates included) round-trip exactly and no cjson quirk (empty array
 * encoded as `{}`, 14-digit numbers) can corrupt a record.
 *
 * Records stay until `expiresAt + retention` (the retention keeps a tombstone, or an expired session,
 * readable so a late token learns why). Scripts receive `horizon = now - retention`: records whose
 * expiresAt <= horizon are pruned, and the user's keys expire when the last record's retention ends
 * (PEXPIRE relative to the caller's clock, so a skew between the replica's and Redis's clocks does not
 * matter). A user with no records left has no keys: the version restarts at 0, which is harmless
 * because version 0 always means "no records".
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

/** Shared prelude: prune records past expiry; fix the TTL of the user's keys. */
const HELPERS = `
local function prune(h, x, l, horizon)
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', horizon)
  for _, sid in ipairs(dead) do
    redis.call('HDEL', h, 'b|' .. sid, 's|' .. sid, 'l|' .. sid, 'e|' .. sid, 't|' .. sid)
    redis.call('SREM', l, sid)
  end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', x, '-inf', horizon) end
end

local function expire(h, x, l, horizon)
  local last = redis.call('ZRANGE', x, -1, -1, 'WITHSCORES')
  local ttl = 0
  if last[2] then ttl = math.ceil(tonumber(last[2]) - tonumber(horizon)) end
  if ttl <= 0 then
    redis.call('DEL', h, x, l)
    return
  end
  ttl = string.format('%.0f', ttl)
  redis.call('PEXPIRE', h, ttl)
  redis.call('PEXPIRE', x, ttl)
  redis.call('PEXPIRE', l, ttl)
end

-- The per-prefix zset of live sessions: add one (score = expiresAt), remove ended ones, drop members
-- past their expiry, and let the key expire with the latest session in it.
local function track(z, now, add, score, removed)
  if add ~= '' then redis.call('ZADD', z, score, add) end
  for _, m in ipairs(removed) do redis.call('ZREM', z, m) end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', z, string.format('%.0f', math.ceil(tonumber(last[2]) - tonumber(now))))
  end
end

-- at: the publisher's clock, so receivers can measure the channel's lag. ended: JSON array or nil.
local function publish(channel, joined, at, ended)
  local extra = ''
  if ended then extra = ',"ended":' .. ended end
  redis.call('PUBLISH', channel, '{"tokenIds":[' .. joined .. '],"at":' .. at .. extra .. '}')
end
`;

/**
 * Compare-and-set commit of one user.
 * KEYS: sessions, expiry, live; unless on a Cluster, the prefix's live-sessions zset and then the index
 *       keys of the new session's token ids (on a Cluster they live in other slots: the store writes
 *       them before the script, see redis.ts).
 * ARGV: expectedVersion, publishedAt (stamped on the message), horizon, channel, create ('1' or '0'),
 *       sid, base, state, lastSeenAt, expiresAt, tokens, tag, now, index value, index PX, then per ended
 *       session: sid, state, end JSON.
 * Returns {1, newVersion, sids ended...} or {0, currentVersion} on conflict (nothing written).
 */
export const COMMIT: LuaScript = {
  name: 'sgCommit',
  source: `${HELPERS}
local h, x, l = KEYS[1], KEYS[2], KEYS[3]
local publishedAt, horizon, channel = ARGV[2], ARGV[3], ARGV[4]
local version = tonumber(redis.call('HGET', h, 'v') or '0')
if version ~= tonumber(ARGV[1]) then return {0, version} end
prune(h, x, l, horizon)
-- The index keys first, as on a Cluster: none is written by a commit that lost its race.
if tonumber(ARGV[15]) > 0 then
  for i = 5, #KEYS do redis.call('SET', KEYS[i], ARGV[14], 'PX', ARGV[15]) end
end
local invalid, ended, gone = {}, {}, {}
for i = 16, #ARGV, 3 do
  local sid = ARGV[i]
  -- Only a live session ends; ending a tombstone again keeps its first reason.
  if redis.call('SREM', l, sid) == 1 then
    gone[#gone + 1] = sid
    redis.call('HSET', h, 's|' .. sid, ARGV[i + 1], 'e|' .. sid, ARGV[i + 2])
    local f = redis.call('HMGET', h, 'b|' .. sid, 'l|' .. sid, 't|' .. sid)
    local t = f[3] or ''
    if t ~= '' then
      local joined = (string.gsub(t, '\\n', ','))
      invalid[#invalid + 1] = joined
      -- The record as committed (JSON fragments joined, never decoded), so receivers need no read.
      ended[#ended + 1] = '{"b":' .. (f[1] or 'null') .. ',"s":"' .. ARGV[i + 1] .. '","e":' .. ARGV[i + 2]
        .. ',"l":' .. (f[2] or '0') .. ',"t":[' .. joined .. ']}'
    end
  end
end
if ARGV[5] == '1' then
  local sid = ARGV[6]
  redis.call('HSET', h, 'b|' .. sid, ARGV[7], 's|' .. sid, ARGV[8], 'l|' .. sid, ARGV[9], 't|' .. sid, ARGV[11])
  redis.call('HDEL', h, 'e|' .. sid)
  redis.call('ZADD', x, ARGV[10], sid)
  if ARGV[8] == 'live' then redis.call('SADD', l, sid) else redis.call('SREM', l, sid) end
end
version = redis.call('HINCRBY', h, 'v', 1)
expire(h, x, l, horizon)
if #invalid > 0 then publish(channel, table.concat(invalid, ','), publishedAt, '[' .. table.concat(ended, ',') .. ']') end
if KEYS[4] then
  local tag, removed, add = ARGV[12], {}, ''
  for j, sid in ipairs(gone) do removed[j] = tag .. '\\n' .. sid end
  if ARGV[5] == '1' and ARGV[8] == 'live' then add = tag .. '\\n' .. ARGV[6] end
  track(KEYS[4], ARGV[13], add, ARGV[10], removed)
end
local reply = {1, version}
for _, sid in ipairs(gone) do reply[#reply + 1] = sid end
return reply
`,
};

/**
 * The version and live sessions of one user, read atomically (a snapshot for compare-and-set).
 * KEYS: sessions, live. Returns {version, then per live session: base, lastSeenAt, tokens}.
 */
export const READ_USER: LuaScript = {
  name: 'sgReadUser',
  source: `
local h, l = KEYS[1], KEYS[2]
local out = {redis.call('HGET', h, 'v') or '0'}
for _, sid in ipairs(redis.call('SMEMBERS', l)) do
  local f = redis.call('HMGET', h, 'b|' .. sid, 'l|' .. sid, 't|' .. sid)
  out[#out + 1] = f[1] or ''
  out[#out + 1] = f[2] or '0'
  out[#out + 1] = f[3] or ''
end
return out
`,
};

/**
 * Adds token ids to a live session: its first `pinned` ids (issued by its login) always stay listed, and
 * at most maxTokens others, the oldest dropped from the list. A dropped id keeps its index key (it stays
 * the session's until the session expires), so nothing is published.
 * KEYS: sessions, expiry, live. ARGV: sid, maxTokens, now, horizon, channel (unused), new tokens (lines),
 * publishedAt (unused), pinned.
 * Returns nil when the session is not live, else {base, state, lastSeenAt, end, tokens}.
 */
export const ADD_TOKENS: LuaScript = {
  name: 'sgAddTokens',
  source: `${HELPERS}
local h, x, l = KEYS[1], KEYS[2], KEYS[3]
local sid, now, horizon = ARGV[1], ARGV[3], ARGV[4]
local pinned = tonumber(ARGV[8] or '0')
if redis.call('SISMEMBER', l, sid) == 0 then return false end
local exp = redis.call('ZSCORE', x, sid)
if not exp or tonumber(exp) <= tonumber(now) then return false end
local fresh, isFresh = {}, {}
for tok in string.gmatch(ARGV[6], '[^\\n]+') do
  if not isFresh[tok] then
    isFresh[tok] = true
    fresh[#fresh + 1] = tok
  end
end
local head, isHead, rotated = {}, {}, {}
local i = 0
for tok in string.gmatch(redis.call('HGET', h, 't|' .. sid) or '', '[^\\n]+') do
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
redis.call('HSET', h, 't|' .. sid, table.concat(kept, '\\n'))
prune(h, x, l, horizon)
expire(h, x, l, horizon)
local f = redis.call('HMGET', h, 'b|' .. sid, 's|' .. sid, 'l|' .. sid, 'e|' .. sid, 't|' .. sid)
return {f[1] or '', f[2] or '', f[3] or '0', f[4] or '', f[5] or ''}
`,
};

/**
 * Moves lastSeenAt of a live, unexpired session forward (never back).
 * KEYS: sessions, expiry, live. ARGV: sid, at, now. Returns 1 when written.
 */
export const TOUCH: LuaScript = {
  name: 'sgTouch',
  source: `
local h, x, l = KEYS[1], KEYS[2], KEYS[3]
local sid = ARGV[1]
if redis.call('SISMEMBER', l, sid) == 0 then return 0 end
local exp = redis.call('ZSCORE', x, sid)
if not exp or tonumber(exp) <= tonumber(ARGV[3]) then return 0 end
local cur = tonumber(redis.call('HGET', h, 'l|' .. sid) or '0')
if tonumber(ARGV[2]) <= cur then return 0 end
redis.call('HSET', h, 'l|' .. sid, ARGV[2])
return 1
`,
};

/**
 * The expiresAt of a session if it is live (addTokens reads it to give the new index keys their TTL).
 * KEYS: sessions, expiry, live. ARGV: sid. Returns the score as a string, or nil.
 */
export const LIVE_EXPIRY: LuaScript = {
  name: 'sgLiveExpiry',
  source: `
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then return false end
return redis.call('ZSCORE', KEYS[2], ARGV[1])
`,
};

/**
 * The live-sessions zset on a Cluster, updated right after a commit (see the layout above).
 * KEYS: the zset. ARGV: now, added member ('' for none), its expiresAt, then removed members.
 */
export const TRACK_LIVE: LuaScript = {
  name: 'sgTrackLive',
  source: `${HELPERS}
local removed = {}
for i = 4, #ARGV do removed[#removed + 1] = ARGV[i] end
track(KEYS[1], ARGV[1], ARGV[2], ARGV[3], removed)
return 1
`,
};

/**
 * The number of live sessions of a prefix: members past their expiresAt are dropped first, so the
 * answer is exact and the zset stays as small as the live sessions. O(log N + expired members).
 * KEYS: the zset. ARGV: now.
 */
export const COUNT_LIVE: LuaScript = {
  name: 'sgCountLive',
  source: `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
`,
};

/** Every script, each defined on the store's client once (see redis.ts). */
export const SCRIPTS: readonly LuaScript[] = [
  COMMIT,
  READ_USER,
  ADD_TOKENS,
  TOUCH,
  LIVE_EXPIRY,
  TRACK_LIVE,
  COUNT_LIVE,
];
