"""The audit trail: which service acted for which user, what it did, and how it went.

core-api sees every such act: each request the gateway forwards to a service with a user's
identity (`request`, `websocket`), and each call a service makes back on the internal API
with a user's forwarded token (`token_exchange`, `history_write`, `history_read`). One row
each in `audit_events` (migration 0005): when, the user, the service, the action, its target
(the method and path without the query, the audience of a token exchange, a session), the
outcome (the HTTP status or WebSocket close code) and the request id. Never bodies, query
strings, headers or tokens.

Writing is off the request path: `record()` appends to an in-memory buffer, and a background
task writes the buffer in one COPY every second (so a row is visible within about a second).
If the database falls behind, the buffer is bounded (50,000 events): what does not fit is
dropped and counted (`harvis_audit_dropped_total`), never waited for. Rows older than
AUDIT_RETENTION_DAYS are deleted hourly (docs/observability.md, "Audit trail").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import Counter

log = logging.getLogger("harvis.audit")

COLUMNS = ("at", "user_id", "service", "action", "target", "outcome", "request_id")
PURGE_EVERY_S = 3600.0
TARGET_MAX = 200

RECORDED = Counter("harvis_audit_events", "Audit events written to the database.")
DROPPED = Counter("harvis_audit_dropped", "Audit events dropped because the write buffer was full.")
WRITE_FAILURES = Counter("harvis_audit_write_failures", "Failed writes of a batch of audit events.")

# The internal API's routes (their templates) and the action each is audited as.
INTERNAL_ACTIONS = {
    "/internal/token": "token_exchange",
    "/internal/history/exchange": "history_write",
    "/internal/history/sessions/{session_id}/messages": "history_read",
}


QUERY = """
SELECT id, at, user_id, service, action, target, outcome, request_id FROM audit_events
WHERE ($1::bigint IS NULL OR user_id = $1)
  AND ($2::text IS NULL OR service = $2)
  AND ($3::text IS NULL OR action = $3)
  AND ($4::timestamptz IS NULL OR at >= $4)
  AND ($5::bigint IS NULL OR id < $5)
ORDER BY id DESC
LIMIT $6
"""


class AuditLog:
    def __init__(self, pool: asyncpg.Pool, retention_days: int, flush_s: float = 1.0, buffer_max: int = 50_000) -> None:
        self.pool = pool
        self.retention_days = retention_days
        self.flush_s = flush_s
        self.buffer_max = buffer_max
        self._buffer: list[tuple[Any, ...]] = []
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0

    # ---------------------------------------------------------------- the hot path

    def record(
        self,
        user_id: int | None,
        service: str,
        action: str,
        target: str | None,
        outcome: int | str,
        request_id: str | None,
    ) -> None:
        """Note one event (no I/O: written by the background task)."""
        if len(self._buffer) >= self.buffer_max:
            DROPPED.inc()
            return
        self._buffer.append(
            (
                datetime.now(UTC),
                user_id,
                service,
                action,
                target[:TARGET_MAX] if target else None,
                str(outcome),
                request_id,
            )
        )

    # ---------------------------------------------------------------- the writer

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
                if time.monotonic() - self._last_purge > PURGE_EVERY_S:
                    await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("audit write failed")

    async def flush(self) -> int:
        """Write what is buffered; returns how many rows. A failed batch is kept for the next
        try while it fits in the buffer."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            async with self.pool.acquire() as conn:
                await conn.copy_records_to_table("audit_events", records=batch, columns=COLUMNS)
        except Exception:
            WRITE_FAILURES.inc()
            room = self.buffer_max - len(self._buffer)
            if room < len(batch):
                DROPPED.inc(len(batch) - max(room, 0))
            self._buffer[:0] = batch[: max(room, 0)]
            raise
        RECORDED.inc(len(batch))
        return len(batch)

    async def purge(self) -> int:
        """Delete the events older than the retention period."""
        self._last_purge = time.monotonic()
        status = await self.pool.execute(
            "DELETE FROM audit_events WHERE at < now() - make_interval(days => $1)", self.retention_days
        )
        deleted = int(status.rsplit(" ", 1)[-1])
        if deleted:
            log.info("audit events past retention deleted", extra={"deleted": deleted, "days": self.retention_days})
        return deleted

    # ---------------------------------------------------------------- reading

    async def query(
        self,
        *,
        user_id: int | None = None,
        service: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first; `before_id` pages back. Filters left None match everything."""
        rows: Sequence[asyncpg.Record] = await self.pool.fetch(QUERY, user_id, service, action, since, before_id, limit)
        return [{**dict(r), "at": r["at"].isoformat()} for r in rows]
