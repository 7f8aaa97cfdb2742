"""Ingestion jobs in PostgreSQL (`kb_jobs`): created by a request, claimed by a worker with
`FOR UPDATE SKIP LOCKED`, their progress written as they go, so a restart loses none.

A worker holds a session advisory lock on the job it runs (on its own connection) from before
the job turns RUNNING until after it is finished; so a RUNNING job whose lock anyone can take
has lost its worker (the process died, its connection with it), and `recover()` puts it back
to PENDING to run again — or FAILED after MAX_ATTEMPTS runs.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

PROGRESS_FIELDS = frozenset({"total_docs", "processed", "current_source", "current_phase", "report"})
LOCK_JOB = 0x6B626A  # "kbj": a job being run
LOCK_SOURCE = 0x6B6273  # "kbs": a source being ingested (two jobs for it never interleave)
MAX_ATTEMPTS = 3
PENDING, RUNNING, COMPLETED, FAILED = "PENDING", "RUNNING", "COMPLETED", "FAILED"
CANCELLED_MESSAGE = "Cancelled"

# Constant SQL pieces (no input): the f-strings below carry only these. noqa S608 there.
_COLUMNS = (
    "id, user_id, kind, status, sources, params, total_docs, processed, current_source, current_phase,"
    " error, report, cancel_requested, attempts, created_at, updated_at, started_at, finished_at"
)


def job_view(row: asyncpg.Record) -> dict[str, Any]:
    """A job as the front end's page reads it (and a little more)."""
    params = json.loads(row["params"]) if isinstance(row["params"], str) else dict(row["params"])
    report = json.loads(row["report"]) if isinstance(row["report"], str) else dict(row["report"])

    def iso(v: Any) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "id": str(row["id"]),
        "job_id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "sources": list(row["sources"]),
        "keywords": params.get("keywords", []),
        "extra_urls": params.get("extra_urls", []),
        "progress": {
            "total_docs": row["total_docs"],
            "processed": row["processed"],
            "current_source": row["current_source"],
            "current_phase": row["current_phase"],
        },
        "error": row["error"],
        "report": report,
        "cancel_requested": row["cancel_requested"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
    }


class Jobs:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, user_id: int, kind: str, sources: list[str], params: dict[str, Any]) -> asyncpg.Record:
        return await self.pool.fetchrow(
            f"INSERT INTO kb_jobs (id, user_id, kind, sources, params) VALUES ($1, $2, $3, $4, $5::jsonb)"  # noqa: S608
            f" RETURNING {_COLUMNS}",
            uuid.uuid4(),
            user_id,
            kind,
            sources,
            json.dumps(params),
        )

    async def get(self, job_id: uuid.UUID, user_id: int | None = None) -> asyncpg.Record | None:
        """The job; with `user_id`, only when it is theirs."""
        return await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM kb_jobs WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)",  # noqa: S608
            job_id,
            user_id,
        )

    async def of_user(self, user_id: int, limit: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM kb_jobs WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",  # noqa: S608
            user_id,
            limit,
        )

    async def open_count(self, user_id: int) -> int:
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM kb_jobs WHERE user_id = $1 AND status IN ('PENDING', 'RUNNING')", user_id
            )
        )

    async def cancel(self, job_id: uuid.UUID, user_id: int) -> asyncpg.Record | None:
        """A pending job ends FAILED ("Cancelled") at once; a running one is asked to stop (its
        worker checks between documents). None when the job isn't theirs."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT status FROM kb_jobs WHERE id = $1 AND user_id = $2 FOR UPDATE", job_id, user_id
            )
            if row is None:
                return None
            if row["status"] == PENDING:
                await conn.execute(
                    "UPDATE kb_jobs SET status = $2, error = $3, cancel_requested = true, finished_at = now(),"
                    " updated_at = now(), current_phase = 'cancelled' WHERE id = $1",
                    job_id,
                    FAILED,
                    CANCELLED_MESSAGE,
                )
            elif row["status"] == RUNNING:
                await conn.execute(
                    "UPDATE kb_jobs SET cancel_requested = true, updated_at = now() WHERE id = $1", job_id
                )
            return await conn.fetchrow(f"SELECT {_COLUMNS} FROM kb_jobs WHERE id = $1", job_id)  # noqa: S608

    # ------------------------------------------------------------ the worker's side

    async def claim(self, conn: asyncpg.Connection) -> asyncpg.Record | None:
        """The oldest pending job, now RUNNING under this connection's advisory lock."""
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT id FROM kb_jobs WHERE status = 'PENDING' ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1"
            )
            if row is None:
                return None
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_JOB, str(row["id"])):
                return None  # a recovering process holds it for a moment: next round
            return await conn.fetchrow(
                "UPDATE kb_jobs SET status = 'RUNNING', attempts = attempts + 1, started_at = now(),"  # noqa: S608
                " updated_at = now(), finished_at = NULL, error = NULL, current_phase = 'starting'"
                f" WHERE id = $1 RETURNING {_COLUMNS}",
                row["id"],
            )

    async def release(self, conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_JOB, str(job_id))

    async def progress(self, job_id: uuid.UUID, **fields: Any) -> bool:
        """Write progress fields (total_docs, processed, current_source, current_phase, report);
        returns whether the job was asked to stop."""
        names = list(fields)
        unknown = set(names) - PROGRESS_FIELDS
        if unknown:
            raise ValueError(f"not progress fields: {sorted(unknown)}")
        values = [json.dumps(v) if n == "report" else v for n, v in fields.items()]
        sets = ", ".join(f"{n} = ${i + 2}{'::jsonb' if n == 'report' else ''}" for i, n in enumerate(names))
        return bool(
            await self.pool.fetchval(
                f"UPDATE kb_jobs SET {sets}{', ' if sets else ''}updated_at = now() WHERE id = $1"  # noqa: S608
                " RETURNING cancel_requested",
                job_id,
                *values,
            )
        )

    async def finish(self, job_id: uuid.UUID, status: str, error: str | None, report: dict[str, Any]) -> None:
        await self.pool.execute(
            "UPDATE kb_jobs SET status = $2, error = $3, report = $4::jsonb, finished_at = now(), updated_at = now(),"
            " current_phase = $5 WHERE id = $1",
            job_id,
            status,
            error,
            json.dumps(report),
            "done" if status == COMPLETED else "failed",
        )

    async def requeue(self, job_id: uuid.UUID) -> None:
        """Back to PENDING (this process is stopping in the middle of it)."""
        await self.pool.execute(
            "UPDATE kb_jobs SET status = 'PENDING', current_phase = 'interrupted: waiting to resume',"
            " updated_at = now() WHERE id = $1 AND status = 'RUNNING'",
            job_id,
        )

    async def recover(self) -> list[tuple[str, str]]:
        """RUNNING jobs whose worker is gone: PENDING again, or FAILED after MAX_ATTEMPTS runs.
        Returns (job id, new status) for each."""
        done: list[tuple[str, str]] = []
        async with self.pool.acquire() as conn:
            for row in await conn.fetch("SELECT id, attempts FROM kb_jobs WHERE status = 'RUNNING'"):
                key = str(row["id"])
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_JOB, key):
                    continue  # its worker is alive
                try:
                    if row["attempts"] >= MAX_ATTEMPTS:
                        status = FAILED
                        await conn.execute(
                            "UPDATE kb_jobs SET status = 'FAILED', finished_at = now(), updated_at = now(),"
                            " current_phase = 'failed', error = $2 WHERE id = $1 AND status = 'RUNNING'",
                            row["id"],
                            f"Interrupted {row['attempts']} times (the service stopped while running it)",
                        )
                    else:
                        status = PENDING
                        await conn.execute(
                            "UPDATE kb_jobs SET status = 'PENDING', updated_at = now(),"
                            " current_phase = 'interrupted: waiting to resume' WHERE id = $1 AND status = 'RUNNING'",
                            row["id"],
                        )
                    done.append((key, status))
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_JOB, key)
        return done

    async def lock_source(self, conn: asyncpg.Connection, key: str) -> bool:
        return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_SOURCE, key))

    async def unlock_source(self, conn: asyncpg.Connection, key: str) -> None:
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_SOURCE, key)
