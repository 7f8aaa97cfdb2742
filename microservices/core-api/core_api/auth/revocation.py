"""Revoked token ids (jti): durable in PostgreSQL, answered from memory.

The `revoked_tokens` table is the truth (it survives restarts and is shared by
every replica). Each replica keeps the unexpired jtis in a dict, loaded at
start and refreshed in the background every `sync_interval_s`; a local logout
updates it at once. With Redis, a revocation is also published, so the other
replicas learn it immediately instead of at their next sync. Rows whose token
has expired anyway are purged, here and in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = logging.getLogger("harvis.auth")

# Each sync re-reads this much history before its last watermark, so a row
# whose insert committed a little after its `revoked_at` is never missed.
SYNC_OVERLAP = timedelta(seconds=60)
PURGE_INTERVAL_S = 300.0
_MAX_BACKOFF_S = 30.0
# Shutdown never waits longer than this on Redis: a pub/sub read or close can
# hang on a dead connection, and must not hold up the process's exit.
STOP_TIMEOUT_S = 2.0


async def _bounded(awaitable: Awaitable[object], timeout_s: float) -> bool:
    """Await with a deadline, without waiting on a cancellation that never lands."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait([task], timeout=timeout_s)
    if not done:
        task.cancel()
        return False
    if not task.cancelled() and task.exception() is not None:
        log.debug("shutdown step failed", extra={"error": str(task.exception())})
    return True


class RevocationStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis | None = None,
        *,
        channel: str = "harvis:auth:revoked",
        sync_interval_s: float = 2.0,
        purge_interval_s: float = PURGE_INTERVAL_S,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self.channel = channel
        self.sync_interval_s = sync_interval_s
        self.purge_interval_s = purge_interval_s
        self._revoked: dict[str, float] = {}  # jti -> token expiry (unix seconds)
        self._watermark: datetime | None = None  # DB time of the last sync
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Counters for /api/auth/stats.
        self.revoked_here = 0
        self.loaded_at_start = 0
        self.learned_from_sync = 0
        self.learned_from_pubsub = 0
        self.sync_errors = 0
        self.purged_rows = 0
        self.last_sync_monotonic: float | None = None

    def is_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def _learn(self, jti: str, exp: float) -> bool:
        if jti in self._revoked or exp <= time.time():
            return False
        self._revoked[jti] = exp
        return True

    async def revoke(self, jti: str, user_id: int, exp: int) -> bool:
        """Revoke one token; False if it already was. Effective here at once."""
        self._revoked[jti] = float(exp)
        sql = (
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, to_timestamp($3))"
            " ON CONFLICT (jti) DO NOTHING"
        )
        async with self._pool.acquire() as conn:
            try:
                status = await conn.execute(sql, jti, user_id, float(exp))
            except asyncpg.ForeignKeyViolationError:  # the user was deleted meanwhile: still revoke
                status = await conn.execute(sql, jti, None, float(exp))
        inserted = status.endswith(" 1")
        if inserted:
            self.revoked_here += 1
            await self._publish(jti, exp)
        return inserted

    async def _publish(self, jti: str, exp: int) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.publish(self.channel, orjson.dumps({"jti": jti, "exp": exp}))
        except Exception as exc:  # the DB row still reaches every replica at its next sync
            log.warning("revocation publish failed", extra={"error": str(exc)})

    async def sync(self) -> int:
        """Pull revocations made elsewhere since the last sync; returns how many were new."""
        async with self._pool.acquire() as conn:
            db_now: datetime = await conn.fetchval("SELECT now()")
            if self._watermark is None:  # first load: everything still relevant
                rows = await conn.fetch(
                    "SELECT jti, extract(epoch FROM expires_at)::float8 AS exp FROM revoked_tokens"
                    " WHERE expires_at > now()"
                )
            else:
                rows = await conn.fetch(
                    "SELECT jti, extract(epoch FROM expires_at)::float8 AS exp FROM revoked_tokens"
                    " WHERE revoked_at > $1 AND expires_at > now()",
                    self._watermark - SYNC_OVERLAP,
                )
        new = sum(self._learn(r["jti"], r["exp"]) for r in rows)
        if self._watermark is None:
            self.loaded_at_start = new
        else:
            self.learned_from_sync += new
        self._watermark = db_now
        self.last_sync_monotonic = time.monotonic()
        return new

    async def purge_expired(self) -> int:
        """Forget tokens that have expired anyway; returns the table rows deleted."""
        now = time.time()
        self._revoked = {j: e for j, e in self._revoked.items() if e > now}
        async with self._pool.acquire() as conn:
            status = await conn.execute("DELETE FROM revoked_tokens WHERE expires_at <= now()")
        deleted = int(status.rsplit(" ", 1)[-1])
        self.purged_rows += deleted
        if deleted:
            log.info("purged expired revocations", extra={"rows": deleted})
        return deleted

    async def start(self) -> None:
        await self.sync()
        if self._redis is not None:
            try:  # subscribe before returning, so nothing published after start() is missed
                await self._subscribe()
            except Exception as exc:
                log.warning("revocation subscribe failed, will retry", extra={"error": str(exc)})
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="auth-revocation-pubsub"))
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="auth-revocation-sync"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            if pending:
                log.warning("revocation tasks did not stop in time", extra={"tasks": [t.get_name() for t in pending]})
        await self._close_pubsub()

    async def _sync_loop(self) -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(self.sync_interval_s)
            try:
                await self.sync()
                if time.monotonic() - last_purge >= self.purge_interval_s:
                    await self.purge_expired()
                    last_purge = time.monotonic()
            except Exception as exc:  # the DB may be briefly away: keep the set we have, retry
                self.sync_errors += 1
                log.warning("revocation sync failed", extra={"error": str(exc)})

    async def _subscribe(self) -> PubSub:
        assert self._redis is not None
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await pubsub.aclose()
            raise
        self._pubsub = pubsub
        return pubsub

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            if not await _bounded(pubsub.aclose(), STOP_TIMEOUT_S) and pubsub.connection is not None:
                with contextlib.suppress(Exception):
                    await pubsub.connection.disconnect(nowait=True)

    async def _listen_loop(self) -> None:
        backoff = 0.5
        while True:
            try:
                pubsub = self._pubsub
                if pubsub is None:
                    pubsub = await self._subscribe()
                    await self.sync()  # whatever was published while we were away
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self._on_message(message.get("data"))
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation subscription lost, retrying", extra={"error": str(exc)})
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _on_message(self, data: object) -> None:
        try:
            if not isinstance(data, bytes | str):
                raise TypeError("not a message body")
            payload = orjson.loads(data)
            jti, exp = str(payload["jti"]), float(payload["exp"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignored malformed revocation message")
            return
        if self._learn(jti, exp):
            self.learned_from_pubsub += 1
