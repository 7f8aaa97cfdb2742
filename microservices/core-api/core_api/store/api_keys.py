"""The `user_api_keys` table: users' provider API keys, stored encrypted (`chat.key_cipher`)
and never read back out through the API (only the key's metadata is listed)."""

from __future__ import annotations

from typing import Any

import asyncpg

COLUMNS = "id, provider_name, api_url, is_active, created_at, updated_at"


def key_dict(r: asyncpg.Record) -> dict[str, Any]:
    """A stored key as the list shows it: never the key itself."""
    return {
        "id": r["id"],
        "provider_name": r["provider_name"],
        "api_url": r["api_url"],
        "is_active": r["is_active"],
        "created_at": r["created_at"].isoformat(),
        "updated_at": r["updated_at"].isoformat(),
    }


async def list_keys(pool: asyncpg.Pool, user_id: int) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM user_api_keys WHERE user_id = $1 ORDER BY provider_name",  # noqa: S608
            user_id,
        )
    return [key_dict(r) for r in rows]


async def save(
    pool: asyncpg.Pool, user_id: int, provider: str, encrypted: bytes, api_url: str | None, is_active: bool
) -> dict[str, Any]:
    """Insert the user's key for `provider`, or replace the one stored."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO user_api_keys (user_id, provider_name, api_key_encrypted, api_url, is_active)"  # noqa: S608 - constant column lists, values bound
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, provider_name) DO UPDATE SET"
            " api_key_encrypted = EXCLUDED.api_key_encrypted, api_url = EXCLUDED.api_url,"
            f" is_active = EXCLUDED.is_active, updated_at = now() RETURNING {COLUMNS}",
            user_id,
            provider,
            encrypted,
            api_url,
            is_active,
        )
    return key_dict(row)


async def delete(pool: asyncpg.Pool, user_id: int, provider: str) -> bool:
    async with pool.acquire() as conn:
        status = await conn.execute(
            "DELETE FROM user_api_keys WHERE user_id = $1 AND provider_name = $2", user_id, provider
        )
    return status.endswith(" 1")


async def active(pool: asyncpg.Pool, user_id: int, provider: str) -> tuple[bytes, str | None] | None:
    """(encrypted key, api_url) of the user's active entry for `provider`, or None."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT api_key_encrypted, api_url FROM user_api_keys"
            " WHERE user_id = $1 AND provider_name = $2 AND is_active",
            user_id,
            provider,
        )
    return (bytes(row["api_key_encrypted"]), row["api_url"]) if row is not None else None
