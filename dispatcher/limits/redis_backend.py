"""Limits shared by every worker through Redis: each decision is one Lua script.

The scripts read Redis's own clock (TIME), so machines with skewed clocks still share one
schedule; send times come back in that clock with its offset from ours.
"""

from __future__ import annotations

import time
from typing import Sequence

import redis.asyncio as aioredis

from dispatcher import redis_client
from dispatcher.limits import credit, keys
from dispatcher.limits.backend import Blocked, Correction, LimitUsage, Reservation, split_deltas
from dispatcher.limits.spec import LimitSpec

# One decision for every candidate, whether it limits requests and tokens only or input and
# output tokens apart too (itpm, otpm): four schedules, 'r', 't', 'i', 'o' (a dimension without
# a limit has interval 0 and keeps its time) and the pause 'p'. Header credit (credit.py): 'n'
# numbers the sends, 'f' counts the calls in flight (with snapshots of 'n': 'sa' older, 'sb'
# newer, taken at 'tb'), 'cn' is the ceiling the provider's words allow ('cw': when it last
# spoke), 'mn' the settled ceiling since the last send, 'pr' when it said its room grows, 'kn'
# how much of the room is kept for urgent calls.
# KEYS: one limit hash per candidate (in preference order), then one cooldown key per candidate.
# ARGV: count, tokens, horizon, usage key prefix, input tokens, output tokens, urgent (1/0),
# credit ttl, flight snapshot period, recheck seconds, reserve release seconds, then per
# candidate: request, token, input and output intervals, burst seconds.
RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local count = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local usage_prefix = ARGV[4]
local need = {1, tokens, tonumber(ARGV[5]), tonumber(ARGV[6])}
local urgent = ARGV[7] == '1'
local credit_ttl = tonumber(ARGV[8])
local flight_snapshot_s = tonumber(ARGV[9])
local recheck = tonumber(ARGV[10])
local release = tonumber(ARGV[11])
local candidates = #KEYS / 2
local earliest = nil
local cooling = 0
local urgent_room = 0
local function fmt(x) return string.format('%.6f', x) end
local function int(x) return string.format('%.0f', x) end
for c = 1, candidates do
  local cooldown_end = tonumber(redis.call('GET', KEYS[candidates + c])) or 0
  if cooldown_end > now then
    cooling = cooling + 1
    if earliest == nil or cooldown_end < earliest then earliest = cooldown_end end
  else
  local base = 11 + 5 * (c - 1)
  local interval = {tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
    tonumber(ARGV[base + 4])}
  local burst = tonumber(ARGV[base + 5])
  local s = redis.call('HMGET', KEYS[c], 'r', 't', 'i', 'o', 'p', 'n', 'cn', 'mn', 'cw', 'pr',
    'f', 'sa', 'sb', 'tb', 'kn')
  local kept = tonumber(s[15]) or 0
  local pace = {tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0, tonumber(s[4]) or 0}
  local p = tonumber(s[5]) or 0
  local n = tonumber(s[6]) or 0
  local ceiling = tonumber(s[7])
  local settled = tonumber(s[8])
  local said_at = tonumber(s[9])
  local grows = tonumber(s[10])
  local word_fresh = burst > 0 and p <= now and said_at ~= nil and now - said_at <= credit_ttl
  -- calls in flight: what a worker that died mid-call never counted out heals within two
  -- snapshot periods (no call is in flight longer than one: at most the sends since then)
  local flight = tonumber(s[11]) or 0
  local older = tonumber(s[12])
  if older ~= nil and flight > n - older then flight = n - older end
  local newer, newer_at = tonumber(s[13]), tonumber(s[14]) or 0
  if flight <= 0 and settled ~= nil and (ceiling == nil or settled > ceiling) then
    ceiling = settled  -- every call answered: the replies since the last send say the room exactly
  end
  -- nothing in flight and the room spent: one call may learn whether the room has grown
  local probe = word_fresh and flight <= 0 and grows ~= nil and now >= grows
  -- the room kept for urgent calls goes to any call just before the provider's room grows
  local keep = kept
  if urgent or (grows ~= nil and now >= grows - release) then keep = 0 end
  local function credit(reserve)
    if not word_fresh or ceiling == nil or n + 1 > ceiling - reserve then return false end
    for d = 1, 4 do
      if interval[d] > 0 and pace[d] - now >= burst then return false end
    end
    return true
  end
  local before = n
  local times = {}
  local credited = 0
  local send = math.max(pace[1], pace[2], pace[3], pace[4], p, now)
  while #times < count do
    if credit(keep) or (probe and #times == 0) then
      send = now
      credited = credited + 1
    elseif word_fresh then
      break  -- the provider's word decides while it is fresh, not the even pace
    else
      send = math.max(pace[1], pace[2], pace[3], pace[4], p, now)
      if send > now + horizon then break end
    end
    times[#times + 1] = fmt(send)
    for d = 1, 4 do
      -- an unlimited dimension keeps its time, or it would pin the schedule against refunds
      if interval[d] > 0 then pace[d] = math.max(pace[d], send) + need[d] * interval[d] end
    end
    n = n + 1
    send = math.max(pace[1], pace[2], pace[3], pace[4], now)
  end
  if #times > 0 then
    redis.call('HSET', KEYS[c], 'r', fmt(pace[1]), 't', fmt(pace[2]), 'i', fmt(pace[3]),
      'o', fmt(pace[4]), 'n', int(n))
    if burst > 0 then
      redis.call('HSET', KEYS[c], 'f', int(flight + #times))
      redis.call('HDEL', KEYS[c], 'mn')
      if now - newer_at > flight_snapshot_s then
        redis.call('HSET', KEYS[c], 'sa', int(newer or before), 'sb', int(before), 'tb', fmt(now))
      end
    end
    redis.call('EXPIRE', KEYS[c], 86400)
    local usage_key = usage_prefix .. KEYS[c] .. ':' .. math.floor(now / 60)
    redis.call('HINCRBY', usage_key, 'req', #times)
    redis.call('HINCRBY', usage_key, 'tok', #times * tokens)
    redis.call('EXPIRE', usage_key, 180)
    return {c, fmt(now), credited, int(flight), int(before), unpack(times)}
  end
  if not urgent and credit(0) then urgent_room = 1 end
  if word_fresh then
    -- room comes with replies to the calls in flight, when the provider said it grows (the
    -- kept room a little before), or once its word is stale and the even pace takes over;
    -- with room left but a schedule too far ahead, when that schedule is back within reach
    local ahead = math.max(pace[1], pace[2], pace[3], pace[4])
    send = math.max(send, said_at + credit_ttl)
    if flight > 0 then send = math.min(send, now + recheck) end
    if grows ~= nil then send = math.min(send, math.max(now, grows - release)) end
    if ceiling ~= nil and n + 1 <= ceiling - keep then send = math.min(send, math.max(now, ahead - burst)) end
  end
  if earliest == nil or send < earliest then earliest = send end
  end
end
local reason = 'limits'
if candidates > 0 and cooling == candidates then reason = 'cooldown' end
return {0, fmt(now), fmt(earliest or now), reason, urgent_room}
"""

# KEYS[1]: limit hash. ARGV: credit ttl, the ceiling, the settled ceiling, seconds until the
# provider's room grows ('' when not said), calls kept for urgent ones. Of two fresh ceilings the higher holds; of the
# settled ones since the last send, the lowest.
OBSERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'cn', 'mn', 'cw')
local ceiling = tonumber(ARGV[2])
local settled = tonumber(ARGV[3])
local old = tonumber(s[1])
if old ~= nil and now - (tonumber(s[3]) or -1e18) <= tonumber(ARGV[1]) and old > ceiling then ceiling = old end
if tonumber(s[2]) ~= nil and tonumber(s[2]) < settled then settled = tonumber(s[2]) end
redis.call('HSET', KEYS[1], 'cw', string.format('%.6f', now), 'cn', string.format('%.0f', ceiling),
  'mn', string.format('%.0f', settled), 'kn', ARGV[5])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'pr', string.format('%.6f', now + tonumber(ARGV[4]))) end
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""

# KEYS: limit hashes. ARGV: per key, how many of its calls in flight have ended.
FINISH = """
for i = 1, #KEYS do
  local flight = tonumber(redis.call('HGET', KEYS[i], 'f'))
  if flight ~= nil then
    redis.call('HSET', KEYS[i], 'f', string.format('%.0f', math.max(0, flight - tonumber(ARGV[i]))))
  end
end
return 1
"""

# KEYS[1]: failure counter, KEYS[2]: cooldown key. ARGV: allowed fails, cooldown seconds.
RECORD_FAILURE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local fails = redis.call('INCR', KEYS[1])
if fails == 1 then redis.call('EXPIRE', KEYS[1], 60) end
if fails > tonumber(ARGV[1]) then
  local cooldown = tonumber(ARGV[2])
  redis.call('SET', KEYS[2], string.format('%.6f', now + cooldown), 'PX', math.max(1, math.ceil(cooldown * 1000)))
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: limit hashes. ARGV: horizon, usage key prefix, then per key: request seconds delta,
# token seconds delta, request count delta, token count delta (the last two for usage counters).
ADJUST = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local floor = now + tonumber(ARGV[1])
local usage_prefix = ARGV[2]
local function shift(value, delta)
  if delta >= 0 then
    if value < now then return now + delta end
    return value + delta
  end
  return math.min(value, math.max(value + delta, floor))
end
for i = 1, #KEYS do
  local dr = tonumber(ARGV[4 * i - 1])
  local dt = tonumber(ARGV[4 * i])
  local state = redis.call('HMGET', KEYS[i], 'r', 't')
  local r = tonumber(state[1]) or 0
  local t = tonumber(state[2]) or 0
  if dr ~= 0 then r = shift(r, dr) end
  if dt ~= 0 then t = shift(t, dt) end
  redis.call('HSET', KEYS[i], 'r', string.format('%.6f', r), 't', string.format('%.6f', t))
  redis.call('EXPIRE', KEYS[i], 86400)
  local usage_key = usage_prefix .. KEYS[i] .. ':' .. math.floor(now / 60)
  if redis.call('EXISTS', usage_key) == 1 then
    redis.call('HINCRBY', usage_key, 'req', tonumber(ARGV[4 * i + 1]))
    redis.call('HINCRBY', usage_key, 'tok', tonumber(ARGV[4 * i + 2]))
  end
end
return 1
"""

# ADJUST with input and output schedules (itpm, otpm). ARGV: horizon, usage key prefix, then per
# key: request, token, input token and output token seconds deltas, request and token count deltas.
ADJUST_SPLIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local floor = now + tonumber(ARGV[1])
local usage_prefix = ARGV[2]
local function shift(value, delta)
  if delta >= 0 then
    if value < now then return now + delta end
    return value + delta
  end
  return math.min(value, math.max(value + delta, floor))
end
for i = 1, #KEYS do
  local base = 6 * i - 3
  local deltas = {
    tonumber(ARGV[base]), tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  }
  local state = redis.call('HMGET', KEYS[i], 'r', 't', 'i', 'o')
  local fields = {'r', 't', 'i', 'o'}
  local values = {}
  for j = 1, 4 do
    local value = tonumber(state[j]) or 0
    if deltas[j] ~= 0 then value = shift(value, deltas[j]) end
    values[#values + 1] = fields[j]
    values[#values + 1] = string.format('%.6f', value)
  end
  redis.call('HSET', KEYS[i], unpack(values))
  redis.call('EXPIRE', KEYS[i], 86400)
  local usage_key = usage_prefix .. KEYS[i] .. ':' .. math.floor(now / 60)
  if redis.call('EXISTS', usage_key) == 1 then
    redis.call('HINCRBY', usage_key, 'req', tonumber(ARGV[base + 4]))
    redis.call('HINCRBY', usage_key, 'tok', tonumber(ARGV[base + 5]))
  end
end
return 1
"""

# KEYS[1]: limit hash. ARGV[1]: seconds to pause from now.
PAUSE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local until_time = now + tonumber(ARGV[1])
local p = tonumber(redis.call('HGET', KEYS[1], 'p')) or 0
if until_time > p then
  redis.call('HSET', KEYS[1], 'p', string.format('%.6f', until_time))
  redis.call('EXPIRE', KEYS[1], 86400)
end
return 1
"""


class RedisLimitBackend:
    """Limits in Redis. Its client is shared with routing numbers and the response cache; a
    Redis that cannot be reached raises ``RedisUnavailable`` (``dispatcher.redis_client``)."""

    def __init__(self, url: str, namespace: str):
        self._client = redis_client.connect(url)
        self._pool = self._client.connection_pool
        self._namespace = namespace
        self._usage_prefix = keys.usage_prefix(namespace)
        self._reserve = self._client.register_script(RESERVE)
        self._observe = self._client.register_script(OBSERVE)
        self._finish = self._client.register_script(FINISH)
        self._adjust = self._client.register_script(ADJUST)
        self._adjust_split = self._client.register_script(ADJUST_SPLIT)
        self._pause = self._client.register_script(PAUSE)
        self._record_failure = self._client.register_script(RECORD_FAILURE)

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    def _key(self, spec: LimitSpec) -> str:
        return keys.limit_hash(self._namespace, spec.key)

    async def reserve(
        self,
        candidates: Sequence[LimitSpec],
        count: int,
        tokens: int,
        horizon: float,
        deployment_ids: Sequence[str] = (),
        input_tokens: int = 0,
        urgent: bool = False,
    ) -> Reservation | Blocked:
        cooldown_keys = [keys.cooldown_key(self._namespace, d) for d in deployment_ids] or [
            keys.cooldown_key(self._namespace, f"-{spec.key}") for spec in candidates
        ]
        hash_keys = [self._key(spec) for spec in candidates]
        args: list = [count, tokens, horizon, self._usage_prefix, input_tokens, tokens - input_tokens,
                      int(urgent), repr(credit.CREDIT_TTL_S), repr(credit.FLIGHT_SNAPSHOT_S),
                      repr(credit.RECHECK_S), repr(credit.RESERVE_RELEASE_S)]
        for spec in candidates:
            args += [repr(spec.request_interval), repr(spec.token_interval), repr(spec.input_interval),
                     repr(spec.output_interval), repr(spec.burst_s)]
        local_before = time.time()
        reply = await self._reserve(keys=hash_keys + cooldown_keys, args=args)
        local_now = (local_before + time.time()) / 2
        index = int(reply[0])
        redis_now = float(reply[1])
        offset = redis_now - local_now
        if index == 0:
            reason = reply[3].decode() if isinstance(reply[3], bytes) else str(reply[3])
            return Blocked(float(reply[2]) - offset, reason, bool(int(reply[4])))
        return Reservation(
            index - 1, [float(t) for t in reply[5:]], offset, int(reply[4]), int(reply[2]), int(reply[3])
        )

    async def observe(self, spec: LimitSpec, word: credit.Word) -> None:
        await self._observe(
            keys=[self._key(spec)],
            args=[repr(credit.CREDIT_TTL_S), repr(word.ceiling), repr(word.settled),
                  "" if word.reset_s is None else repr(word.reset_s), word.kept],
        )

    async def finish(self, ended: Sequence[tuple[LimitSpec, int]]) -> None:
        await self._finish(keys=[self._key(spec) for spec, _ in ended], args=[count for _, count in ended])

    async def adjust(self, corrections: Sequence[Correction], horizon: float) -> None:
        if any(correction[0].splits_tokens for correction in corrections):
            await self._adjust_with_split(corrections, horizon)
            return
        hash_keys, args = [], [horizon, self._usage_prefix]
        for spec, requests, tokens, *_ in corrections:
            delta_r = requests * spec.request_interval
            delta_t = tokens * spec.token_interval
            if delta_r or delta_t:
                hash_keys.append(self._key(spec))
                args += [repr(delta_r), repr(delta_t), int(requests), int(tokens)]
        if hash_keys:
            await self._adjust(keys=hash_keys, args=args)

    async def _adjust_with_split(self, corrections: Sequence[Correction], horizon: float) -> None:
        hash_keys, args = [], [horizon, self._usage_prefix]
        for correction in corrections:
            spec, requests, tokens = correction[:3]
            input_tokens, output_tokens = split_deltas(correction)
            deltas = (
                requests * spec.request_interval, tokens * spec.token_interval,
                input_tokens * spec.input_interval, output_tokens * spec.output_interval,
            )
            if any(deltas):
                hash_keys.append(self._key(spec))
                args += [repr(delta) for delta in deltas] + [int(requests), int(tokens)]
        if hash_keys:
            await self._adjust_split(keys=hash_keys, args=args)

    async def pause(self, spec: LimitSpec, seconds: float) -> None:
        await self._pause(keys=[self._key(spec)], args=[repr(seconds)])

    async def record_failure(self, deployment_id: str, allowed_fails: int, cooldown_s: float) -> bool:
        started = await self._record_failure(
            keys=[keys.failures_key(self._namespace, deployment_id),
                  keys.cooldown_key(self._namespace, deployment_id)],
            args=[allowed_fails, repr(cooldown_s)],
        )
        return bool(int(started))

    async def cooldowns(self, deployment_ids: Sequence[str]) -> list[float]:
        raw_time = await self._client.time()
        now = raw_time[0] + raw_time[1] / 1e6
        values = await self._client.mget([keys.cooldown_key(self._namespace, d) for d in deployment_ids])
        return [max(0.0, float(v) - now) if v is not None else 0.0 for v in values]

    async def add_spend(self, scopes: Sequence[tuple[str, float]], amount: float) -> None:
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        for scope, period in scopes:
            key = keys.spend_key(self._namespace, scope, int(now // period))
            pipe.incrbyfloat(key, amount)
            pipe.expire(key, int(period * 2) + 60)
        await pipe.execute()

    async def spend(self, scopes: Sequence[tuple[str, float]]) -> list[float]:
        now = time.time()
        values = await self._client.mget(
            [keys.spend_key(self._namespace, scope, int(now // period)) for scope, period in scopes]
        )
        return [float(v) if v is not None else 0.0 for v in values]

    async def usage(self, specs: Sequence[LimitSpec]) -> list[LimitUsage]:
        raw_time = await self._client.time()
        now = raw_time[0] + raw_time[1] / 1e6
        minute = int(now // 60)
        pipe = self._client.pipeline(transaction=False)
        for spec in specs:
            pipe.hmget(self._key(spec), "r", "t", "p", "i", "o")
            pipe.hmget(keys.usage_hash(self._namespace, spec.key, minute), "req", "tok")
        replies = await pipe.execute()
        result = []
        for i in range(len(specs)):
            r, t, p, i_free, o_free = (float(v) if v is not None else 0.0 for v in replies[2 * i])
            req, tok = (int(v) if v is not None else 0 for v in replies[2 * i + 1])
            result.append(LimitUsage(
                requests_this_minute=req,
                tokens_this_minute=tok,
                paused_for_s=max(0.0, p - now),
                backlog_s=max(0.0, max(r, t, i_free, o_free) - now),
            ))
        return result

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._pool.disconnect()
