"""Per-user quotas on the tools that cost money, spam people or scan networks:
emails (per recipient), SMS, webhooks and network probes (per port).

Each quota is a sliding window: at most `limit` uses in any `window_s` seconds,
a use freeing its slot `window_s` after it was taken. A tool takes its cost
*before* the costly act and after its input was checked (a refused address or
URL costs nothing), and check-and-record is one atomic step, so parallel calls
can't all slip past the check: in Redis (a Lua script) when REDIS_URL is set —
shared by every replica — else in this process. While Redis is unreachable the
in-process windows stand in, so the limits keep holding (per replica).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .settings import Settings

log = logging.getLogger("harvis.mcp.quotas")


class QuotaExceeded(Exception):
    """A user's quota is used up: REST answers 429 + Retry-After, MCP a tool error."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Quota:
    name: str  # in the storage key: emails, sms, webhooks, probes
    unit: str  # what the message counts: "emails", "SMS", "network probes"
    limit: int
    window_s: int
    per: str  # "hour", "day", "minute"

    def __str__(self) -> str:
        return f"{self.limit} {self.unit} per {self.per}"


def quotas_from(settings: Settings) -> dict[str, Quota]:
    return {
        q.name: q
        for q in (
            Quota("emails", "emails", settings.mcp_emails_per_hour, 3600, "hour"),
            Quota("sms", "SMS", settings.mcp_sms_per_day, 86_400, "day"),
            Quota("webhooks", "webhooks", settings.mcp_webhooks_per_hour, 3600, "hour"),
            Quota("probes", "network probes", settings.mcp_network_probes_per_minute, 60, "minute"),
        )
    }


class Windows(Protocol):
    """Sliding-window counters, one per key."""

    async def take(self, key: str, *, limit: int, window_s: int, cost: int) -> float:
        """Record `cost` uses and return 0 when they fit in the last `window_s` seconds;
        otherwise record nothing and return the seconds until they would fit."""
        ...

    async def close(self) -> None: ...


class MemoryWindows:
    """In-process windows: a deque of use times per key. `take` never awaits between
    reading and recording, so on the event loop it is atomic without a lock."""

    MAX_KEYS = 100_000  # past this, keys with no live use are swept out

    def __init__(self) -> None:
        self._logs: dict[str, tuple[int, deque[float]]] = {}  # key -> (window, use times, monotonic)

    def _sweep(self, now: float) -> None:
        self._logs = {k: (w, d) for k, (w, d) in self._logs.items() if d and d[-1] > now - w}

    async def take(self, key: str, *, limit: int, window_s: int, cost: int) -> float:
        now = time.monotonic()
        if len(self._logs) > self.MAX_KEYS:
            self._sweep(now)
        _, uses = self._logs.setdefault(key, (window_s, deque()))
        while uses and uses[0] <= now - window_s:
            uses.popleft()
        over = len(uses) + cost - limit
        if over > len(uses):  # cost > limit: it never fits
            return float(window_s)
        if over > 0:  # the `over` oldest uses must age out first
            return max(uses[over - 1] + window_s - now, 0.001)
        uses.extend([now] * cost)
        return 0.0

    async def close(self) -> None:
        self._logs.clear()


# A sorted set per key, scored by use time in ms on Redis's own clock (replicas of
# this service may disagree on the time; the one Redis doesn't). Prune, count,
# then record or answer how long until enough slots free up: one atomic script.
_TAKE = """
local key = KEYS[1]
local limit, window_ms, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
local used = redis.call('ZCARD', key)
local over = used + cost - limit
if over > 0 then
  local oldest = redis.call('ZRANGE', key, over - 1, over - 1, 'WITHSCORES')
  if oldest[2] == nil then return window_ms end
  return math.max(tonumber(oldest[2]) + window_ms - now, 1)
end
for i = 1, cost do
  redis.call('ZADD', key, now, ARGV[4] .. ':' .. i)
end
redis.call('PEXPIRE', key, window_ms)
return 0
"""


class RedisWindows:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._script = self._redis.register_script(_TAKE)
        self.prefix = prefix

    async def take(self, key: str, *, limit: int, window_s: int, cost: int) -> float:
        wait_ms = await self._script(keys=[self.prefix + key], args=[limit, window_s * 1000, cost, uuid.uuid4().hex])
        return int(wait_ms) / 1000

    async def close(self) -> None:
        await self._redis.aclose()


def _duration(seconds: float) -> str:
    s = max(1, math.ceil(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


class Quotas:
    """The service's quotas: `await quotas.take("sms", user_id)` before sending."""

    REDIS_RETRY_S = 10.0  # after a Redis failure, in-process windows for this long

    def __init__(self, settings: Settings) -> None:
        self.quotas = quotas_from(settings)
        self._memory = MemoryWindows()
        self._redis: RedisWindows | None = None
        if settings.redis_url:
            self._redis = RedisWindows(settings.redis_url, settings.mcp_redis_prefix + "quota:")
        self._redis_down_until = 0.0

    @property
    def backend(self) -> str:
        return "redis" if self._redis is not None else "memory"

    async def _take(self, key: str, quota: Quota, cost: int) -> float:
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self._redis.take(key, limit=quota.limit, window_s=quota.window_s, cost=cost)
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_down_until = time.monotonic() + self.REDIS_RETRY_S
                log.warning("quotas: Redis unavailable, limiting in-process", extra={"error": str(exc)})
        return await self._memory.take(key, limit=quota.limit, window_s=quota.window_s, cost=cost)

    async def take(self, name: str, user_id: int | str, cost: int = 1) -> None:
        """Record `cost` uses of quota `name` for the user, or raise QuotaExceeded."""
        quota = self.quotas[name]
        if cost > quota.limit:
            raise QuotaExceeded(
                f"this call needs {cost} {quota.unit}, but the quota allows at most {quota}", quota.window_s
            )
        wait = await self._take(f"{name}:{user_id}", quota, cost)
        if wait > 0:
            at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            raise QuotaExceeded(
                f"quota reached: {quota} for your account; resets in {_duration(wait)} (at {at:%Y-%m-%d %H:%M:%S} UTC)",
                max(1, math.ceil(wait)),
            )

    async def describe(self) -> str:
        limits = ", ".join(str(q) for q in self.quotas.values())
        return f"{self.backend}: {limits}"

    async def close(self) -> None:
        await self._memory.close()
        if self._redis is not None:
            await self._redis.close()
