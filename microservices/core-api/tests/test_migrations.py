"""Migrations: concurrent runners apply each version once; the schema's rules hold."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from harvis_common.db import migrate, migration_files

pytestmark = pytest.mark.asyncio


async def test_concurrent_migrations_apply_once(fresh_database: Callable[[], Awaitable[str]]) -> None:
    dsn = await fresh_database()
    conns = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, "core-api", "core_api.migrations") for c in conns))
        versions = [v for v, _ in migration_files("core_api.migrations")]
        assert "0001_auth" in versions
        # Exactly one runner applied everything; the others waited on the lock and found nothing to do.
        assert sorted(results, key=len) == [[], [], versions]
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [f"core-api/{v}" for v in versions]
        assert await migrate(conns[0], "core-api", "core_api.migrations") == []  # and again later: idempotent
    finally:
        for conn in conns:
            await conn.close()


async def test_users_schema_rules(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        user_id = await conn.fetchval(
            "INSERT INTO users (username, email, password_hash) VALUES ('Schema_Check', 'schema@example.com', 'x')"
            " RETURNING id"
        )
        assert isinstance(user_id, int)
        row = await conn.fetchrow(
            "SELECT is_admin, avatar, created_at, updated_at, last_login_at FROM users WHERE id = $1", user_id
        )
        assert row["is_admin"] is False and row["avatar"] is None and row["last_login_at"] is None
        assert row["created_at"] is not None and row["updated_at"] is not None
        for username, email in (("schema_check", "other@example.com"), ("other_name", "schema@example.com")):
            with pytest.raises(asyncpg.UniqueViolationError):
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x')", username, email
                    )
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO users (username, email, password_hash) VALUES ('bad name!', 'b@example.com', 'x')"
                )
        # Revocations go with their user.
        await conn.execute(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at)"
            " VALUES ('schema-jti', $1, now() + interval '1 hour')",
            user_id,
        )
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)
        assert await conn.fetchval("SELECT count(*) FROM revoked_tokens WHERE jti = 'schema-jti'") == 0
