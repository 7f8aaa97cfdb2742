"""PostgreSQL pool and the migrations that own the schema.

Migrations are numbered SQL files in `migrations/`, applied in order inside one
transaction each, recorded in `schema_migrations`. A transaction-level advisory
lock serialises replicas that start at once: the second waits, then sees the
versions the first applied and skips them.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger("harvis.db")

# Arbitrary constant shared by every core-api replica (and any service that
# migrates through this module): "harvis" in ASCII.
MIGRATION_LOCK_KEY = 0x686172766973


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) pairs in order; the version is the file name's stem."""
    files = sorted(
        (f for f in resources.files("core_api.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    if applied:
        log.info("migrations applied", extra={"versions": applied})
    return applied


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)
    assert pool is not None
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool
