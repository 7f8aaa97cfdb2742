"""The durable TTS job queue (PostgreSQL table voice_jobs).

`POST /api/jobs/tts` inserts a row in state `created`. Workers (VOICE_JOB_WORKERS per
process, any number of processes) claim the oldest claimable row with
`FOR UPDATE SKIP LOCKED` — a `created` job, or an `active` one whose lease expired because
its worker died — mark it `active` with a lease, renew the lease while synthesising
(heartbeat), and finish it `completed` (with `data.audio_path`) or, after
VOICE_JOB_MAX_ATTEMPTS tries, `failed`. Finishing only succeeds while the worker still
holds the lease, so a job taken over by another worker is never finished twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger("voice.jobs")

JOB_NAME = "tts"

CLAIM_SQL = """
UPDATE voice_jobs SET state = 'active', attempts = attempts + 1, worker = $1,
       lease_until = now() + make_interval(secs => $2), started_at = coalesce(started_at, now()),
       updated_at = now()
WHERE id = (
    SELECT id FROM voice_jobs
    WHERE (state = 'created' OR (state = 'active' AND lease_until < now()))
    ORDER BY created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING id, user_id, name, payload, attempts, max_attempts
"""


def _job_dict(row: asyncpg.Record) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return v.isoformat() if v is not None else None

    data = row["data"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "state": row["state"],
        "data": json.loads(data) if isinstance(data, str) else (data or {}),
        "error": row["error"],
        "attempts": row["attempts"],
        "created_at": iso(row["created_at"]),
        "started_at": iso(row["started_at"]),
        "completed_at": iso(row["completed_at"]),
    }


class JobQueue:
    def __init__(self, pool: asyncpg.Pool, *, lease_s: float, max_attempts: int, poll_s: float) -> None:
        self.pool = pool
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()

    async def enqueue(self, user_id: int, payload: dict[str, Any], name: str = JOB_NAME) -> str:
        job_id = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO voice_jobs (id, user_id, name, payload, max_attempts) VALUES ($1, $2, $3, $4::jsonb, $5)",
            job_id,
            user_id,
            name,
            json.dumps(payload),
            self.max_attempts,
        )
        self._wake.set()
        return str(job_id)

    async def get(self, user_id: int, job_id: str) -> dict[str, Any] | None:
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            return None
        row = await self.pool.fetchrow(
            "SELECT id, name, state, data, error, attempts, created_at, started_at, completed_at"
            " FROM voice_jobs WHERE id = $1 AND user_id = $2",
            key,
            user_id,
        )
        return _job_dict(row) if row else None

    async def claim(self) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn, conn.transaction():
            return await conn.fetchrow(CLAIM_SQL, self.worker_id, float(self.lease_s))

    async def heartbeat(self, job_id: uuid.UUID) -> bool:
        res = await self.pool.execute(
            "UPDATE voice_jobs SET lease_until = now() + make_interval(secs => $3), updated_at = now()"
            " WHERE id = $1 AND worker = $2 AND state = 'active'",
            job_id,
            self.worker_id,
            float(self.lease_s),
        )
        return res.endswith(" 1")

    async def complete(self, job_id: uuid.UUID, data: dict[str, Any]) -> bool:
        res = await self.pool.execute(
            "UPDATE voice_jobs SET state = 'completed', data = $3::jsonb, error = NULL, completed_at = now(),"
            " lease_until = NULL, updated_at = now() WHERE id = $1 AND worker = $2 AND state = 'active'",
            job_id,
            self.worker_id,
            json.dumps(data),
        )
        return res.endswith(" 1")

    async def fail(self, job_id: uuid.UUID, error: str, *, final: bool) -> None:
        """Record the error; a job with attempts left goes back to `created` (retried)."""
        await self.pool.execute(
            "UPDATE voice_jobs SET state = CASE WHEN $3 OR attempts >= max_attempts THEN 'failed' ELSE 'created' END,"
            " error = $4, lease_until = NULL, updated_at = now(),"
            " completed_at = CASE WHEN $3 OR attempts >= max_attempts THEN now() END"
            " WHERE id = $1 AND worker = $2 AND state = 'active'",
            job_id,
            self.worker_id,
            final,
            error[:2000],
        )

    async def release(self, job_id: uuid.UUID) -> None:
        """Give an interrupted job back to the queue (to be retried)."""
        await self.pool.execute(
            "UPDATE voice_jobs SET state = 'created', lease_until = NULL, worker = NULL, updated_at = now()"
            " WHERE id = $1 AND worker = $2 AND state = 'active'",
            job_id,
            self.worker_id,
        )

    async def fail_exhausted(self) -> int:
        """Jobs whose lease expired with no attempts left (their worker died each time) fail."""
        res = await self.pool.execute(
            "UPDATE voice_jobs SET state = 'failed', error = coalesce(error, 'interrupted too many times'),"
            " completed_at = now(), lease_until = NULL, updated_at = now()"
            " WHERE state = 'active' AND lease_until < now() AND attempts >= max_attempts"
        )
        return int(res.split()[-1])

    async def run_worker(
        self, handler: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]], is_final: Callable[[BaseException], bool]
    ) -> None:
        """Claim and run jobs until cancelled. `handler(job)` returns the job's `data`."""
        while True:
            try:
                await self.fail_exhausted()
                row = await self.claim()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("job queue unavailable", extra={"error": str(exc)})
                row = None
            if row is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                continue
            await self._run_one(row, handler, is_final)

    async def _run_one(
        self,
        row: asyncpg.Record,
        handler: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        is_final: Callable[[BaseException], bool],
    ) -> None:
        job_id = row["id"]
        payload = row["payload"]
        job = {
            "id": str(job_id),
            "user_id": row["user_id"],
            "name": row["name"],
            "payload": json.loads(payload) if isinstance(payload, str) else payload,
            "attempt": row["attempts"],
        }
        log.info("job started", extra={"job_id": str(job_id), "attempt": row["attempts"]})

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                if not await self.heartbeat(job_id):
                    return

        beater = asyncio.create_task(beat())
        try:
            data = await handler(job)
        except asyncio.CancelledError:
            # Shutdown: hand the job back at once (a killed worker's lease simply runs out).
            try:
                await asyncio.wait_for(asyncio.shield(self.release(job_id)), 2)
            except Exception as exc:  # the lease expiry retries it anyway
                log.warning("could not hand back an interrupted job", extra={"error": str(exc)})
            raise
        except Exception as exc:  # a job's failure must not stop the worker
            log.warning("job failed", extra={"job_id": str(job_id), "error": str(exc)})
            await self.fail(job_id, str(getattr(exc, "message", exc)) or type(exc).__name__, final=is_final(exc))
        else:
            await self.complete(job_id, data)
            log.info("job completed", extra={"job_id": str(job_id)})
        finally:
            beater.cancel()
