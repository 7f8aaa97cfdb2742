"""Ownership records: which user created which n8n workflow and ran which execution.
(Reservations still `pending` in n8n — see limits.py — are nobody's workflow yet.)"""

from __future__ import annotations

from typing import Any

import asyncpg


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get_workflow(self, user_id: int, n8n_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT n8n_id, user_id, name, webhook_path, source, prompt, created_at, active FROM n8n_workflows"
            " WHERE n8n_id = $1 AND user_id = $2 AND NOT pending",
            n8n_id,
            user_id,
        )

    async def list_workflows(self, user_id: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT n8n_id AS id, name, webhook_path, source, created_at, active FROM n8n_workflows"
            " WHERE user_id = $1 AND NOT pending ORDER BY created_at DESC",
            user_id,
        )
        return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]

    async def delete_workflow(self, n8n_id: str) -> None:
        await self.pool.execute("DELETE FROM n8n_workflows WHERE n8n_id = $1", n8n_id)

    async def add_execution(self, execution_id: str, n8n_id: str, user_id: int) -> None:
        await self.pool.execute(
            "INSERT INTO n8n_executions (execution_id, n8n_id, user_id) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
            execution_id,
            n8n_id,
            user_id,
        )

    async def owns_execution(self, user_id: int, execution_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT 1 FROM n8n_executions WHERE execution_id = $1 AND user_id = $2", execution_id, user_id
            )
        )
