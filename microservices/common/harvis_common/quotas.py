"""Per-user quotas on costly work: chat and research turns, seconds of audio, characters
spoken, emails, SMS… — one implementation for every service.

A `Quota` is a named limit on a rolling window: at most `limit` units (turns, seconds,
characters) in any `window_s` seconds, each use weighing its `cost` and freeing it
`window_s` after it was taken. A route takes its cost after its input was checked and
*before* the costly act, and check-and-record is one atomic step, so parallel requests
can't all slip past the check: in Redis (one Lua script, on Redis's clock) when a URL is
given — shared by every replica — else in this process, where a step without an await in
it is atomic on the event loop. While Redis is unreachable the in-process windows stand
in, so the limits keep holding (per replica).

Over the quota: `QuotaExceeded`, with a message for the user (which quota, when it resets)
and the seconds until enough of the window has freed up. `charge()` turns it into the
fleet's JSON error, 429 + `Retry-After` + `{"detail", "message"}`.

Needs `redis` (redis-py) in the service's requirements.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from fastapi import HTTPException
from redis.exceptions import RedisError

log = logging.getLogger("harvis.quotas")

# For a route's `responses=` (OpenAPI): what a refused charge looks like.
QUOTA_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {"description": "A per-user quota is used up (Retry-After says for how long); JSON detail/message"}
}

_PERIODS = {60: "minute", 3600: "hour", 86_400: "day"}


class QuotaExceeded(Exception):
    """A user's quota is used up: REST answers 429 + Retry-After, MCP a tool error."""

    def __init__(self, message: str, retry_after_s: int, quota: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.quota = quota

    def http(self) -> HTTPException:
        """The fleet's JSON error (`install_error_handlers` renders `{"detail", "message"}`)."""
        return HTTPException(429, self.message, headers={"Retry-After": str(self.retry_after_s)})


@dataclass(frozen=True)
class Quota:
    name: str  # in storage keys and code: "chat", "stt", "sms"
    unit: str  # what the user-facing message counts: "chat turns", "seconds of audio"
    limit: int
    window_s: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s < 1:
            raise ValueError(f"quota {self.name}: limit and window must be at least 1")

    @property
    def per(self) -> str:
        return _PERIODS.get(self.window_s) or f"{_duration(self.window_s)}"

    def __str__(self) -> str:
        return f"{self.limit} {self.unit} per {self.per}"


@dataclass(frozen=True)
class Use:
    """One quota's part of a take: its storage key, its limit and window, what it costs."""

    key: str
    limit: int
    window_s: int
    cost: int


class Windows(Protocol):
    """Rolling windows of weighted uses, one per key."""

    async def take(self, uses: list[Use]) -> list[float]:
        """Record every use at once when each fits in its window, and return zeros; otherwise
        record nothing and return, per use, 0 when it fits or the seconds until it would."""
        ...

    async def close(self) -> None: ...


@dataclass
class _Log:
    window_s: int
    uses: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic time, cost), oldest first
    total: int = 0

    def prune(self, now: float) -> None:
        while self.uses and self.uses[0][0] <= now - self.window_s:
            self.total -= self.uses.popleft()[1]

    def wait(self, now: float, limit: int, cost: int) -> float:
        """0 when `cost` more fits, else the seconds until enough of the oldest uses age out."""
        over = self.total + cost - limit
        if over <= 0:
            return 0.0
        if cost > limit:  # never fits
            return float(self.window_s)
        freed = 0
        for at, weight in self.uses:
            freed += weight
            if freed >= over:
                return max(at + self.window_s - now, 0.001)
        return float(self.window_s)


class MemoryWindows:
    """In-process windows. `take` never awaits between reading and recording, so on the
    event loop it is atomic without a lock."""

    MAX_KEYS = 100_000  # past this, keys with no live use are swept out

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}

    def _sweep(self, now: float) -> None:
        self._logs = {k: log for k, log in self._logs.items() if log.uses and log.uses[-1][0] > now - log.window_s}

    async def take(self, uses: list[Use]) -> list[float]:
        now = time.monotonic()
        if len(self._logs) > self.MAX_KEYS:
            self._sweep(now)
        logs = [self._logs.setdefault(u.key, _Log(u.window_s)) for u in uses]
        waits = []
        for use, entry in zip(uses, logs, strict=True):
            entry.prune(now)
            waits.append(entry.wait(now, use.limit, use.cost))
        if any(waits):
            return waits
        for use, entry in zip(uses, logs, strict=True):
            entry.uses.append((now, use.cost))
            entry.total += use.cost
        return waits

    async def close(self) -> None:
        self._logs.clear()


# Per key: a sorted set of uses ("<id>:<cost>", scored by time in ms on Redis's own clock:
# replicas may disagree on the time, the one Redis doesn't) and the sum of their costs beside
# it (so a check costs the expired uses, not all of them), both expiring together one window
# after the last use. Prune, sum, then record every use or answer how long each must wait:
# one atomic script. KEYS: per use, its set and its sum; ARGV: the take's id, then per use
# limit, window (ms), cost. Returns per use 0 or the milliseconds to wait.
_TAKE = """
local function cost_of(member) return tonumber(string.match(member, ':(%d+)$')) or 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS / 2
local totals, waits, refused = {}, {}, false
for i = 1, n do
  local uses, sum = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, window, cost = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local cutoff = now - window
  local total = redis.call('GET', sum)
  if total and redis.call('EXISTS', uses) == 1 then
    total = tonumber(total)
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', uses, '-inf', cutoff)) do total = total - cost_of(m) end
    redis.call('ZREMRANGEBYSCORE', uses, '-inf', cutoff)
  else  -- no sum (first use, or lost): count what is left
    redis.call('ZREMRANGEBYSCORE', uses, '-inf', cutoff)
    total = 0
    for _, m in ipairs(redis.call('ZRANGE', uses, 0, -1)) do total = total + cost_of(m) end
  end
  totals[i] = total
  waits[i] = 0
  local over = total + cost - limit
  if over > 0 then
    refused = true
    waits[i] = window
    if cost <= limit then  -- the oldest uses that must age out first
      local freed, start, found = 0, 0, false
      while not found do
        local page = redis.call('ZRANGE', uses, start, start + 99, 'WITHSCORES')
        if #page == 0 then break end
        for j = 1, #page, 2 do
          freed = freed + cost_of(page[j])
          if freed >= over then
            waits[i] = math.max(tonumber(page[j + 1]) + window - now, 1)
            found = true
            break
          end
        end
        start = start + 100
      end
    end
  end
end
for i = 1, n do
  local uses, sum = KEYS[2 * i - 1], KEYS[2 * i]
  local window, cost = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  if not refused then
    redis.call('ZADD', uses, now, ARGV[1] .. ':' .. cost)
    redis.call('PEXPIRE', uses, window)
    redis.call('SET', sum, totals[i] + cost, 'PX', window)
  else  -- the pruned sum, expiring with its set
    local ttl = redis.call('PTTL', uses)
    if ttl > 0 then redis.call('SET', sum, totals[i], 'PX', ttl) else redis.call('DEL', sum) end
  end
end
return waits
"""


class RedisWindows:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._script = self._redis.register_script(_TAKE)
        self.prefix = prefix

    async def take(self, uses: list[Use]) -> list[float]:
        keys: list[str] = []
        args: list[Any] = [uuid.uuid4().hex]
        for use in uses:
            # A hash tag: a take's keys (one user's) share a cluster slot, as a script needs.
            base = f"{self.prefix}{{{use.key}}}"
            keys += [base + ":uses", base + ":sum"]
            args += [use.limit, use.window_s * 1000, use.cost]
        waits = await self._script(keys=keys, args=args)
        return [int(w) / 1000 for w in waits]

    async def close(self) -> None:
        await self._redis.aclose()


def _duration(seconds: float) -> str:
    s = max(1, math.ceil(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min" if s % 3600 // 60 else f"{s // 3600} h"


class Quotas:
    """A service's quotas: `await quotas.take("chat", user_id)` before the costly act.

    `redis_url` empty: in-process windows (one replica). Keys are `<prefix>{<name>:<user>}…`.
    """

    REDIS_RETRY_S = 10.0  # after a Redis failure, in-process windows for this long

    def __init__(self, quotas: Iterable[Quota], *, redis_url: str = "", prefix: str = "harvis:quota:") -> None:
        self.quotas = {q.name: q for q in quotas}
        self._memory = MemoryWindows()
        self._redis = RedisWindows(redis_url, prefix) if redis_url else None
        self._redis_down_until = 0.0

    @classmethod
    def for_service(cls, quotas: Iterable[Quota], *, redis_url: str, service_prefix: str) -> Quotas:
        """A service's quotas, kept under its own Redis key prefix (its `<X>_REDIS_PREFIX`
        setting): keys `<service_prefix>quota:…`, beside whatever else it keeps there."""
        return cls(quotas, redis_url=redis_url, prefix=service_prefix + "quota:")

    @property
    def backend(self) -> str:
        return "redis" if self._redis is not None else "memory"

    async def _take(self, uses: list[Use]) -> list[float]:
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self._redis.take(uses)
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_down_until = time.monotonic() + self.REDIS_RETRY_S
                log.warning("quotas: Redis unavailable, limiting in-process", extra={"error": str(exc)})
        return await self._memory.take(uses)

    async def take(self, name: str, user_id: int | str, cost: int = 1) -> None:
        """Record `cost` units of quota `name` for the user, or raise QuotaExceeded."""
        await self.take_all(user_id, {name: cost})

    async def take_all(self, user_id: int | str, costs: Mapping[str, int]) -> None:
        """Record the costs of several quotas together — all of them, or (QuotaExceeded) none."""
        quotas = [(self.quotas[name], int(cost)) for name, cost in costs.items()]
        for quota, cost in quotas:
            if cost < 0:
                raise ValueError(f"quota {quota.name}: negative cost {cost}")
            if cost > quota.limit:
                raise QuotaExceeded(
                    f"this request needs {cost} {quota.unit}, but the quota allows at most {quota}",
                    quota.window_s,
                    quota.name,
                )
        live = [(q, cost) for q, cost in quotas if cost > 0]
        if not live:
            return
        waits = await self._take([Use(f"{q.name}:{user_id}", q.limit, q.window_s, cost) for q, cost in live])
        refused = [(wait, q) for wait, (q, _) in zip(waits, live, strict=True) if wait > 0]
        if refused:
            wait, quota = max(refused, key=lambda r: r[0])  # every quota must fit again
            at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            raise QuotaExceeded(
                f"quota reached: {quota} for your account; resets in {_duration(wait)} (at {at:%Y-%m-%d %H:%M:%S} UTC)",
                max(1, math.ceil(wait)),
                quota.name,
            )

    async def describe(self) -> str:
        """For a `/ready` check: the backend and every limit."""
        limits = ", ".join(str(q) for q in self.quotas.values())
        return f"{self.backend}: {limits}"

    async def close(self) -> None:
        await self._memory.close()
        if self._redis is not None:
            await self._redis.close()


async def charge(quotas: Quotas, user_id: int | str, costs: Mapping[str, int] | str, cost: int = 1) -> None:
    """For a route: take from the user's quota(s) — `charge(q, uid, "chat")` or
    `charge(q, uid, {"stt": 12, "mic_chat": 1})` — or raise the 429 HTTPException
    (`Retry-After`, JSON `{"detail", "message"}`). Call it after the input was checked
    (bad input costs nothing) and before the costly act; for a stream, before it starts."""
    try:
        await quotas.take_all(user_id, {costs: cost} if isinstance(costs, str) else costs)
    except QuotaExceeded as exc:
        raise exc.http() from None
