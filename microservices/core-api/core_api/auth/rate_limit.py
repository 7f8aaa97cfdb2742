"""Attempt counters for logins (per client address and per account) and signups (per
address), in fixed windows.

An attempt is counted *before* anything is evaluated, in one atomic step that
also answers whether it is over the limit: a burst of parallel guesses cannot
all pass a check that looks first and writes later (issue 14 saw 30 parallel
wrong passwords all reach bcrypt). An attempt that was never evaluated (the
hashing pool shed it) is given back, and so is a successful login's attempt
on its address: a good password must not use up an office's shared budget,
while it does clear the account's counter (a spraying address is not reset).

A refused attempt is given back at once too, so a count is what was let through.
A window opens at the first attempt and lasts `window_s`. Counters live in
Redis when a client is given (INCR + PEXPIRE in one Lua script, so every
replica shares one budget); otherwise, or while Redis is unreachable, in this
process, where a step without an await in it is atomic on the event loop.
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

# Add one to every key and open its window on the first hit, atomically (with a repair
# for a key that somehow lost its TTL, so it can never lock forever); returns
# count, milliseconds left, for each key in turn.
_HIT_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if n == 1 or ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  out[2 * i - 1] = n
  out[2 * i] = ttl
end
return out
"""

# Take one back from each key that still exists (never creating a key without a TTL).
_UNDO_SCRIPT = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and redis.call('DECR', key) <= 0 then
    redis.call('DEL', key)
  end
end
return 1
"""


class CounterStore(Protocol):
    async def hit(self, keys: list[str], window_s: int) -> list[tuple[int, float]]:
        """Add one to each key at once; (count now, seconds left in its window) for each."""

    async def undo(self, keys: list[str]) -> None:
        """Take one back from each key whose window is still open."""

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

    # No await inside these: each runs to completion on the event loop, so it is atomic.
    async def hit(self, keys: list[str], window_s: int) -> list[tuple[int, float]]:
        now = time.monotonic()
        if len(self._data) > self.MAX_KEYS:
            self._data = {k: v for k, v in self._data.items() if v[1] > now}
        out = []
        for key in keys:
            entry = self._live(key, now)
            count, end = (entry[0] + 1, entry[1]) if entry else (1, now + window_s)
            self._data[key] = (count, end)
            out.append((count, end - now))
        return out

    async def undo(self, keys: list[str]) -> None:
        now = time.monotonic()
        for key in keys:
            entry = self._live(key, now)
            if entry is None:
                continue
            if entry[0] <= 1:
                del self._data[key]
            else:
                self._data[key] = (entry[0] - 1, entry[1])

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)


class RedisCounters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._hit = redis.register_script(_HIT_SCRIPT)
        self._undo = redis.register_script(_UNDO_SCRIPT)

    async def hit(self, keys: list[str], window_s: int) -> list[tuple[int, float]]:
        raw = await self._hit(keys=keys, args=[window_s * 1000])
        return [(int(n), max(int(ms), 0) / 1000) for n, ms in zip(raw[::2], raw[1::2], strict=True)]

    async def undo(self, keys: list[str]) -> None:
        await self._undo(keys=keys)

    async def delete(self, key: str) -> None:
        await self._redis.delete(key)


class Counters:
    """Redis counters with this process's as the fallback while Redis is unreachable."""

    def __init__(self, redis: Redis | None) -> None:
        self._memory = MemoryCounters()
        self._redis: CounterStore | None = RedisCounters(redis) if redis is not None else None
        self.redis_errors = 0

    @property
    def backend(self) -> str:
        return "redis" if self._redis is not None else "memory"

    async def _run(self, op: Callable[[CounterStore], Awaitable[T]]) -> T:
        if self._redis is not None:
            try:
                return await op(self._redis)
            except (RedisError, OSError) as exc:
                # Keep limiting from this process rather than fail requests or stop limiting.
                self.redis_errors += 1
                log.warning("rate limiter: redis unavailable, using in-process counters", extra={"error": str(exc)})
        return await op(self._memory)

    async def hit(self, keys: list[str], window_s: int) -> list[tuple[int, float]]:
        return await self._run(lambda s: s.hit(keys, window_s))

    async def undo(self, keys: list[str]) -> None:
        await self._run(lambda s: s.undo(keys))

    async def delete(self, key: str) -> None:
        await self._run(lambda s: s.delete(key))


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0
    scope: str = ""  # which limit refused: "ip", "account"


def _verdict(counts: list[tuple[int, float]], limits: list[tuple[int, str]]) -> Verdict:
    over = [(left, scope) for (count, left), (limit, scope) in zip(counts, limits, strict=True) if count > limit]
    if not over:
        return Verdict(True)
    left, scope = max(over)
    return Verdict(False, max(1, math.ceil(left)), scope)


def _digest(value: str) -> str:
    # Hashed: no email addresses sitting in Redis key names.
    return hashlib.sha256(value.strip().lower().encode("utf-8")).hexdigest()[:32]


class LoginRateLimiter:
    def __init__(
        self,
        *,
        per_ip: int,
        per_account: int,
        window_s: int,
        redis: Redis | None = None,
        key_prefix: str = "harvis:auth:",
        counters: Counters | None = None,
    ) -> None:
        self.per_ip = per_ip
        self.per_account = per_account
        self.window_s = window_s
        self.prefix = f"{key_prefix}login:"
        self.counters = counters or Counters(redis)

    @property
    def backend(self) -> str:
        return self.counters.backend

    @property
    def redis_errors(self) -> int:
        return self.counters.redis_errors

    def ip_key(self, ip: str) -> str:
        return f"{self.prefix}ip:{ip}"

    def account_key(self, email: str) -> str:
        return f"{self.prefix}acct:{_digest(email)}"

    async def attempt(self, ip: str, email: str) -> Verdict:
        """Count this attempt, then say whether it may be evaluated (one atomic step)."""
        keys = [self.ip_key(ip), self.account_key(email)]
        verdict = _verdict(
            await self.counters.hit(keys, self.window_s), [(self.per_ip, "ip"), (self.per_account, "account")]
        )
        if not verdict.allowed:
            # Refused before any check: it uses up nothing (so a blocked address can't burn an
            # account's budget). The counts it passed through never fall below the evaluated ones.
            await self.counters.undo(keys)
        return verdict

    async def succeeded(self, ip: str, email: str) -> None:
        """The right password: the address gets its attempt back, the account starts over."""
        await self.counters.undo([self.ip_key(ip)])
        await self.counters.delete(self.account_key(email))

    async def not_evaluated(self, ip: str, email: str) -> None:
        """Counted but never checked (shed for load): give the attempt back to both."""
        await self.counters.undo([self.ip_key(ip), self.account_key(email)])


class SignupRateLimiter:
    def __init__(self, *, per_ip: int, window_s: int, counters: Counters, key_prefix: str = "harvis:auth:") -> None:
        self.per_ip = per_ip
        self.window_s = window_s
        self.prefix = f"{key_prefix}signup:"
        self.counters = counters

    def ip_key(self, ip: str) -> str:
        return f"{self.prefix}ip:{ip}"

    async def attempt(self, ip: str) -> Verdict:
        key = [self.ip_key(ip)]
        verdict = _verdict(await self.counters.hit(key, self.window_s), [(self.per_ip, "ip")])
        if not verdict.allowed:
            await self.counters.undo(key)
        return verdict

    async def not_evaluated(self, ip: str) -> None:
        await self.counters.undo([self.ip_key(ip)])
