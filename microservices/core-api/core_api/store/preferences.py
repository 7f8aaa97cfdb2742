"""The `user_preferences` table: one row per user who changed a preference; a user without one
has the defaults (`DEFAULTS`)."""

from __future__ import annotations

from typing import Any

import asyncpg

DEFAULTS: dict[str, Any] = {"use_knowledge_base": False}


async def get(pool: asyncpg.Pool, user_id: int) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT use_knowledge_base FROM user_preferences WHERE user_id = $1", user_id)
    return {**DEFAULTS, **(dict(row) if row is not None else {})}


async def update(pool: asyncpg.Pool, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply `changes` (known preferences, values already validated); the preferences after."""
    if not changes:
        return await get(pool, user_id)
    current = {**await get(pool, user_id), **changes}
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO user_preferences (user_id, use_knowledge_base) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO UPDATE SET use_knowledge_base = EXCLUDED.use_knowledge_base,"
            " updated_at = now()",
            user_id,
            current["use_knowledge_base"],
        )
    return await get(pool, user_id)


async def use_knowledge_base(pool: asyncpg.Pool, user_id: int) -> bool:
    return bool((await get(pool, user_id))["use_knowledge_base"])
