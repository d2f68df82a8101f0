"""Limits shared by every worker through Redis: each decision is one Lua script.

The scripts read Redis's own clock (TIME), so machines with skewed clocks still share one
schedule; send times come back in that clock with its offset from ours.
"""

from __future__ import annotations

import time
from typing import Sequence

import redis.asyncio as aioredis

from dispatcher import redis_client
from dispatcher.limits import keys
from dispatcher.limits.backend import Blocked, Correction, LimitUsage, Reservation, split_deltas
from dispatcher.limits.spec import LimitSpec

# KEYS: one limit hash per candidate (in preference order), then one cooldown key per candidate.
# ARGV: count, tokens, horizon, usage key prefix, then per candidate: request_interval, token_interval
RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local count = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local usage_prefix = ARGV[4]
local candidates = #KEYS / 2
local earliest = nil
local cooling = 0
for i = 1, candidates do
  local cooldown_end = tonumber(redis.call('GET', KEYS[candidates + i])) or 0
  if cooldown_end > now then
    cooling = cooling + 1
    if earliest == nil or cooldown_end < earliest then earliest = cooldown_end end
  else
  local ri = tonumber(ARGV[3 + 2 * i])
  local ti = tonumber(ARGV[4 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'r', 't', 'p')
  local r = tonumber(state[1]) or 0
  local t = tonumber(state[2]) or 0
  local p = tonumber(state[3]) or 0
  local send = math.max(r, t, p, now)
  local times = {}
  while #times < count and send <= now + horizon do
    times[#times + 1] = string.format('%.6f', send)
    -- an unlimited dimension keeps its time, or it would pin the schedule against refunds
    if ri > 0 then r = send + ri end
    if ti > 0 then t = send + tokens * ti end
    send = math.max(r, t, now)
  end
  if #times > 0 then
    redis.call('HSET', KEYS[i], 'r', string.format('%.6f', r), 't', string.format('%.6f', t))
    redis.call('EXPIRE', KEYS[i], 86400)
    local usage_key = usage_prefix .. KEYS[i] .. ':' .. math.floor(now / 60)
    redis.call('HINCRBY', usage_key, 'req', #times)
    redis.call('HINCRBY', usage_key, 'tok', #times * tokens)
    redis.call('EXPIRE', usage_key, 180)
    return {i, string.format('%.6f', now), unpack(times)}
  end
  if earliest == nil or send < earliest then earliest = send end
  end
end
local reason = 'limits'
if candidates > 0 and cooling == candidates then reason = 'cooldown' end
return {0, string.format('%.6f', now), string.format('%.6f', earliest or now), reason}
"""

# RESERVE for candidates of which some limit input and output tokens apart (itpm, otpm): the
# same decision with two more schedules, 'i' and 'o'. Kept apart so that a call on deployments
# without them runs RESERVE, not a script doing more work.
# KEYS: as RESERVE. ARGV: count, tokens, horizon, usage key prefix, input tokens, output tokens,
# then per candidate: request_interval, token_interval, input_interval, output_interval
RESERVE_SPLIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local count = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local usage_prefix = ARGV[4]
local input_tokens = tonumber(ARGV[5])
local output_tokens = tonumber(ARGV[6])
local candidates = #KEYS / 2
local earliest = nil
local cooling = 0
for i = 1, candidates do
  local cooldown_end = tonumber(redis.call('GET', KEYS[candidates + i])) or 0
  if cooldown_end > now then
    cooling = cooling + 1
    if earliest == nil or cooldown_end < earliest then earliest = cooldown_end end
  else
  local ri = tonumber(ARGV[3 + 4 * i])
  local ti = tonumber(ARGV[4 + 4 * i])
  local ii = tonumber(ARGV[5 + 4 * i])
  local oi = tonumber(ARGV[6 + 4 * i])
  local state = redis.call('HMGET', KEYS[i], 'r', 't', 'p', 'i', 'o')
  local r = tonumber(state[1]) or 0
  local t = tonumber(state[2]) or 0
  local p = tonumber(state[3]) or 0
  local si = tonumber(state[4]) or 0
  local so = tonumber(state[5]) or 0
  local send = math.max(r, t, si, so, p, now)
  local times = {}
  while #times < count and send <= now + horizon do
    times[#times + 1] = string.format('%.6f', send)
    if ri > 0 then r = send + ri end
    if ti > 0 then t = send + tokens * ti end
    if ii > 0 then si = send + input_tokens * ii end
    if oi > 0 then so = send + output_tokens * oi end
    send = math.max(r, t, si, so, now)
  end
  if #times > 0 then
    redis.call('HSET', KEYS[i], 'r', string.format('%.6f', r), 't', string.format('%.6f', t),
      'i', string.format('%.6f', si), 'o', string.format('%.6f', so))
    redis.call('EXPIRE', KEYS[i], 86400)
    local usage_key = usage_prefix .. KEYS[i] .. ':' .. math.floor(now / 60)
    redis.call('HINCRBY', usage_key, 'req', #times)
    redis.call('HINCRBY', usage_key, 'tok', #times * tokens)
    redis.call('EXPIRE', usage_key, 180)
    return {i, string.format('%.6f', now), unpack(times)}
  end
  if earliest == nil or send < earliest then earliest = send end
  end
end
local reason = 'limits'
if candidates > 0 and cooling == candidates then reason = 'cooldown' end
return {0, string.format('%.6f', now), string.format('%.6f', earliest or now), reason}
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
        self._reserve_split = self._client.register_script(RESERVE_SPLIT)
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
    ) -> Reservation | Blocked:
        cooldown_keys = [keys.cooldown_key(self._namespace, d) for d in deployment_ids] or [
            keys.cooldown_key(self._namespace, f"-{spec.key}") for spec in candidates
        ]
        hash_keys = [self._key(spec) for spec in candidates]
        args: list = [count, tokens, horizon, self._usage_prefix]
        script = self._reserve
        if any(spec.splits_tokens for spec in candidates):
            script = self._reserve_split
            args += [input_tokens, tokens - input_tokens]
            for spec in candidates:
                args += [repr(spec.request_interval), repr(spec.token_interval),
                         repr(spec.input_interval), repr(spec.output_interval)]
        else:
            for spec in candidates:
                args += [repr(spec.request_interval), repr(spec.token_interval)]
        local_before = time.time()
        reply = await script(keys=hash_keys + cooldown_keys, args=args)
        local_now = (local_before + time.time()) / 2
        index = int(reply[0])
        redis_now = float(reply[1])
        offset = redis_now - local_now
        if index == 0:
            reason = reply[3].decode() if isinstance(reply[3], bytes) else str(reply[3])
            return Blocked(float(reply[2]) - offset, reason)
        return Reservation(index - 1, [float(t) for t in reply[2:]], offset)

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
