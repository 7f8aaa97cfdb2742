"""Per-user limits on n8n (issue 14): workflows owned, workflows active, runs per hour.

Each check-and-record is one transaction holding a per-user advisory lock in PostgreSQL,
so parallel requests of one user (and every replica of this service) queue behind each
other for the few milliseconds it takes: N parallel creates against a cap of 3 make
exactly 3. The counts are the rows themselves (the ownership table, the runs table), so
they can't drift from what the user has:

- a workflow's place is reserved (a `pending` row) before n8n is asked to create it, then
  confirmed with n8n's id or given back; a reservation older than `STALE_S` (the service died
  in between) no longer counts;
- `active` is set before n8n is asked to activate, and cleared when that fails;
- a run is recorded before the webhook is called (given back only when n8n never got it);
  runs are not deleted with their workflow, so deleting and recreating frees nothing.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import asyncpg

# The first key of the two-int advisory lock ("n8" in ASCII): this service's user locks.
LOCK_CLASS = 0x6E38
STALE_S = 600
# Waiting alone frees no place in a count limit; a minute is a reasonable time to come back
# after deleting or deactivating something.
COUNT_RETRY_AFTER_S = 60


class LimitReached(Exception):
    """A user's limit is reached: the route answers 429 with Retry-After."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = max(1, retry_after_s)


def _duration(seconds: float) -> str:
    s = max(1, math.ceil(seconds))
    return f"{s} s" if s < 60 else f"{math.ceil(s / 60)} min"


class Limits:
    def __init__(self, pool: asyncpg.Pool, *, max_workflows: int, max_active: int, max_runs_per_hour: int) -> None:
        self.pool = pool
        self.max_workflows, self.max_active, self.max_runs = max_workflows, max_active, max_runs_per_hour

    @staticmethod
    async def _lock(conn: Any, user_id: int) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, user_id % 2_147_483_647)

    # ------------------------------------------------------------ workflows

    async def reserve_workflow(self, user_id: int, name: str) -> str:
        """A place for one more workflow, held by a pending row: returns its id, to confirm or release."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock(conn, user_id)
            await conn.execute(
                "DELETE FROM n8n_workflows WHERE user_id = $1 AND pending"
                " AND created_at < now() - make_interval(secs => $2)",
                user_id,
                STALE_S,
            )
            owned = await conn.fetchval("SELECT count(*) FROM n8n_workflows WHERE user_id = $1", user_id)
            if owned >= self.max_workflows:
                raise LimitReached(
                    f"Workflow limit reached: at most {self.max_workflows} workflows per user"
                    f" (you have {owned}); delete one to create another",
                    COUNT_RETRY_AFTER_S,
                )
            reservation = f"pending:{uuid.uuid4().hex}"
            await conn.execute(
                "INSERT INTO n8n_workflows (n8n_id, user_id, name, pending) VALUES ($1, $2, $3, true)",
                reservation,
                user_id,
                name[:128],
            )
            return reservation

    async def confirm_workflow(
        self,
        reservation: str,
        user_id: int,
        n8n_id: str,
        name: str,
        webhook_path: str | None,
        source: str,
        prompt: str | None,
    ) -> None:
        """The reservation becomes the record of the workflow n8n created (recorded even if
        the reservation went stale meanwhile: n8n has the workflow, so the user owns it)."""
        args = (n8n_id, name, webhook_path, source, prompt)
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "UPDATE n8n_workflows SET n8n_id = $2, name = $3, webhook_path = $4, source = $5, prompt = $6,"
                " pending = false, created_at = now() WHERE n8n_id = $1",
                reservation,
                *args,
            )
            if done == "UPDATE 0":
                await conn.execute(
                    "INSERT INTO n8n_workflows (n8n_id, name, webhook_path, source, prompt, user_id)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    *args,
                    user_id,
                )

    async def release_workflow(self, reservation: str) -> None:
        await self.pool.execute("DELETE FROM n8n_workflows WHERE n8n_id = $1 AND pending", reservation)

    # ------------------------------------------------------------ active workflows

    async def reserve_activation(self, user_id: int, n8n_id: str) -> bool:
        """Count this workflow as active; False when it was already (nothing was taken)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock(conn, user_id)
            if await conn.fetchval(
                "SELECT active FROM n8n_workflows WHERE n8n_id = $1 AND user_id = $2", n8n_id, user_id
            ):
                return False
            active = await conn.fetchval("SELECT count(*) FROM n8n_workflows WHERE user_id = $1 AND active", user_id)
            if active >= self.max_active:
                raise LimitReached(
                    f"Active workflow limit reached: at most {self.max_active} active workflows per user"
                    f" (you have {active}); deactivate or delete one first",
                    COUNT_RETRY_AFTER_S,
                )
            await conn.execute(
                "UPDATE n8n_workflows SET active = true WHERE n8n_id = $1 AND user_id = $2", n8n_id, user_id
            )
            return True

    async def set_inactive(self, n8n_id: str) -> None:
        await self.pool.execute("UPDATE n8n_workflows SET active = false WHERE n8n_id = $1", n8n_id)

    # ------------------------------------------------------------ runs

    async def take_run(self, user_id: int, n8n_id: str) -> int:
        """Record one run in the user's last hour; its id (to refund) or LimitReached."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock(conn, user_id)
            await conn.execute(
                "DELETE FROM n8n_runs WHERE user_id = $1 AND started_at <= now() - interval '1 hour'", user_id
            )
            used = await conn.fetchval("SELECT count(*) FROM n8n_runs WHERE user_id = $1", user_id)
            if used >= self.max_runs:
                # The place frees up when the run that is `used - max + 1`-th from the oldest leaves the hour.
                wait = await conn.fetchval(
                    "SELECT extract(epoch FROM started_at + interval '1 hour' - now()) FROM n8n_runs"
                    " WHERE user_id = $1 ORDER BY started_at OFFSET $2 LIMIT 1",
                    user_id,
                    used - self.max_runs,
                )
                wait = float(wait or 1)
                raise LimitReached(
                    f"Execution limit reached: at most {self.max_runs} executions per hour per user;"
                    f" the next one is possible in {_duration(wait)}",
                    math.ceil(wait),
                )
            return int(
                await conn.fetchval(
                    "INSERT INTO n8n_runs (user_id, n8n_id) VALUES ($1, $2) RETURNING id", user_id, n8n_id
                )
            )

    async def refund_run(self, run_id: int) -> None:
        """A run n8n never received (unreachable, no webhook) does not count."""
        await self.pool.execute("DELETE FROM n8n_runs WHERE id = $1", run_id)
