"""Limits kept in this process (embedded mode): the same schedule as the Lua script."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from typing import Sequence

from dispatcher.limits.backend import Blocked, Correction, LimitUsage, Reservation, split_deltas
from dispatcher.limits.credit import Word
from dispatcher.limits.schedule import ScheduleState, count_in_flight, observe, plan, shift
from dispatcher.limits.spec import LimitSpec


class MemoryLimitBackend:
    def __init__(self):
        self._states: dict[str, ScheduleState] = defaultdict(ScheduleState)
        self._minute_usage: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        self._failures: dict[str, list[float]] = defaultdict(list)
        self._cooling_until: dict[str, float] = {}
        self._spend: dict[tuple[str, int], float] = defaultdict(float)

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
        now = time.time()
        earliest = None
        cooling = 0
        urgent_room = False
        for index, spec in enumerate(candidates):
            cooldown_end = self._cooling_until.get(deployment_ids[index], 0.0) if deployment_ids else 0.0
            if cooldown_end > now:
                cooling += 1
                earliest = cooldown_end if earliest is None else min(earliest, cooldown_end)
                continue
            state = self._states[spec.key]
            trial = replace(state)
            times, next_free, credited, room = plan(
                trial, now=now, count=count, tokens=tokens,
                request_interval=spec.request_interval, token_interval=spec.token_interval,
                horizon=horizon, input_tokens=input_tokens,
                input_interval=spec.input_interval, output_interval=spec.output_interval,
                burst_s=spec.burst_s, urgent=urgent,
            )
            if times:
                before = state.n
                in_flight = count_in_flight(trial, len(times), now) if spec.burst_s else 0
                self._states[spec.key] = trial
                usage = self._minute_usage[(spec.key, int(now // 60))]
                usage[0] += len(times)
                usage[1] += len(times) * tokens
                return Reservation(index, times, 0.0, before, credited, int(in_flight))
            urgent_room = urgent_room or room
            earliest = next_free if earliest is None else min(earliest, next_free)
        reason = "cooldown" if candidates and cooling == len(candidates) else "limits"
        return Blocked(earliest if earliest is not None else now, reason, urgent_room)

    async def observe(self, spec: LimitSpec, word: Word) -> None:
        observe(self._states[spec.key], word, time.time())

    async def finish(self, ended: Sequence[tuple[LimitSpec, int]]) -> None:
        for spec, count in ended:
            state = self._states[spec.key]
            state.f = max(0, state.f - count)

    async def record_failure(self, deployment_id: str, allowed_fails: int, cooldown_s: float) -> bool:
        now = time.time()
        recent = [t for t in self._failures[deployment_id] if t > now - 60.0] + [now]
        if len(recent) > allowed_fails:
            self._failures[deployment_id] = []
            self._cooling_until[deployment_id] = now + cooldown_s
            return True
        self._failures[deployment_id] = recent
        return False

    async def cooldowns(self, deployment_ids: Sequence[str]) -> list[float]:
        now = time.time()
        return [max(0.0, self._cooling_until.get(d, 0.0) - now) for d in deployment_ids]

    async def adjust(self, corrections: Sequence[Correction], horizon: float) -> None:
        now = time.time()
        for correction in corrections:
            spec, requests, tokens = correction[:3]
            input_tokens, output_tokens = split_deltas(correction)
            state = self._states[spec.key]
            usage = self._minute_usage.get((spec.key, int(now // 60)))
            if usage is not None:
                usage[0] += requests
                usage[1] += tokens
            if requests and spec.request_interval:
                state.r = shift(state.r, requests * spec.request_interval, now=now, floor_offset=horizon)
            if tokens and spec.token_interval:
                state.t = shift(state.t, tokens * spec.token_interval, now=now, floor_offset=horizon)
            if input_tokens and spec.input_interval:
                state.i = shift(state.i, input_tokens * spec.input_interval, now=now, floor_offset=horizon)
            if output_tokens and spec.output_interval:
                state.o = shift(state.o, output_tokens * spec.output_interval, now=now, floor_offset=horizon)

    async def pause(self, spec: LimitSpec, seconds: float) -> None:
        state = self._states[spec.key]
        state.p = max(state.p, time.time() + seconds)

    async def usage(self, specs: Sequence[LimitSpec]) -> list[LimitUsage]:
        now = time.time()
        result = []
        for spec in specs:
            state = self._states[spec.key]
            requests, tokens = self._minute_usage.get((spec.key, int(now // 60)), (0, 0))
            result.append(LimitUsage(
                requests_this_minute=requests,
                tokens_this_minute=tokens,
                paused_for_s=max(0.0, state.p - now),
                backlog_s=max(0.0, max(state.r, state.t, state.i, state.o) - now),
            ))
        return result

    async def aclose(self) -> None:
        return None

    async def add_spend(self, scopes: Sequence[tuple[str, float]], amount: float) -> None:
        now = time.time()
        for scope, period in scopes:
            self._spend[(scope, int(now // period))] += amount

    async def spend(self, scopes: Sequence[tuple[str, float]]) -> list[float]:
        now = time.time()
        return [self._spend.get((scope, int(now // period)), 0.0) for scope, period in scopes]
