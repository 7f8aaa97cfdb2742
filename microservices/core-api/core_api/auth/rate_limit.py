"""Failed-login counters per IP and per account, in fixed windows.

A window opens at the first failure and lasts `window_s`; once a key has
`limit` failures in it, further attempts are refused (before any password
check) until the window closes. A successful login clears the account's
counter, not the IP's (one good password must not unlock a spraying IP).

Counters live in Redis when a client is given, so every replica shares them;
otherwise (or while Redis is unreachable) in this process.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("harvis.auth")
T = TypeVar("T")

# INCR every key and open its window on the first hit, atomically (and with a
# repair for a key that somehow lost its TTL, so it can never lock forever).
_INCR_SCRIPT = """
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 or redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, ARGV[1])
  end
end
return 1
"""


class CounterStore(Protocol):
    async def peek(self, keys: list[str]) -> list[tuple[int, float]]:
        """(failures, seconds left in the window) for each key; (0, 0) when absent."""

    async def incr(self, keys: list[str], window_s: int) -> None: ...

    async def delete(self, key: str) -> None: ...


class MemoryCounters:
    MAX_KEYS = 100_000  # past this, closed windows are swept out

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, float]] = {}  # key -> (count, window end on the monotonic clock)

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    async def peek(self, keys: list[str]) -> list[tuple[int, float]]:
        now = time.monotonic()
        out = []
        for key in keys:
            entry = self._live(key, now)
            out.append((entry[0], entry[1] - now) if entry else (0, 0.0))
        return out

    async def incr(self, keys: list[str], window_s: int) -> None:
        now = time.monotonic()
        if len(self._data) > self.MAX_KEYS:
            self._data = {k: v for k, v in self._data.items() if v[1] > now}
        for key in keys:
            entry = self._live(key, now)
            self._data[key] = (entry[0] + 1, entry[1]) if entry else (1, now + window_s)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)


class RedisCounters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._incr = redis.register_script(_INCR_SCRIPT)

    async def peek(self, keys: list[str]) -> list[tuple[int, float]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            raw = await pipe.execute()
        out = []
        for count, pttl in zip(raw[::2], raw[1::2], strict=True):
            out.append((int(count), max(pttl, 0) / 1000) if count is not None else (0, 0.0))
        return out

    async def incr(self, keys: list[str], window_s: int) -> None:
        await self._incr(keys=keys, args=[window_s])

    async def delete(self, key: str) -> None:
        await self._redis.delete(key)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0
    scope: str = ""  # "ip" or "account": which limit refused


class LoginRateLimiter:
    def __init__(
        self,
        *,
        per_ip: int,
        per_account: int,
        window_s: int,
        redis: Redis | None = None,
        key_prefix: str = "harvis:auth:",
    ) -> None:
        self.per_ip = per_ip
        self.per_account = per_account
        self.window_s = window_s
        self.prefix = f"{key_prefix}login:"
        self._memory = MemoryCounters()
        self._redis = RedisCounters(redis) if redis is not None else None
        self.redis_errors = 0

    @property
    def backend(self) -> str:
        return "redis" if self._redis is not None else "memory"

    def ip_key(self, ip: str) -> str:
        return f"{self.prefix}ip:{ip}"

    def account_key(self, email: str) -> str:
        # Hashed: no email addresses sitting in Redis key names.
        digest = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]
        return f"{self.prefix}acct:{digest}"

    async def _run(self, op: Callable[[CounterStore], Awaitable[T]]) -> T:
        if self._redis is not None:
            try:
                return await op(self._redis)
            except (RedisError, OSError) as exc:
                # Keep limiting from this process rather than fail logins or stop limiting.
                self.redis_errors += 1
                log.warning("rate limiter: redis unavailable, using in-process counters", extra={"error": str(exc)})
        return await op(self._memory)

    async def check(self, ip: str, email: str) -> Verdict:
        keys = [self.ip_key(ip), self.account_key(email)]
        (ip_count, ip_left), (acct_count, acct_left) = await self._run(lambda s: s.peek(keys))
        blocked = [
            (left, scope)
            for count, left, limit, scope in (
                (ip_count, ip_left, self.per_ip, "ip"),
                (acct_count, acct_left, self.per_account, "account"),
            )
            if count >= limit
        ]
        if not blocked:
            return Verdict(True)
        left, scope = max(blocked)
        return Verdict(False, max(1, math.ceil(left)), scope)

    async def record_failure(self, ip: str, email: str) -> None:
        keys = [self.ip_key(ip), self.account_key(email)]
        await self._run(lambda s: s.incr(keys, self.window_s))

    async def reset_account(self, email: str) -> None:
        key = self.account_key(email)
        await self._run(lambda s: s.delete(key))
