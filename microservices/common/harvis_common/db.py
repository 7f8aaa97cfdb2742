"""PostgreSQL pool (asyncpg) and the migrations that own each service's schema.

A service keeps numbered SQL files in a package of its own (e.g.
`core_api.migrations`), applied in order inside one transaction each and
recorded in `schema_migrations` as `<service>/<file stem>`. A transaction-level
advisory lock serialises replicas (and services) that start at once: the
second waits, then sees what the first applied and skips it.

Needs `asyncpg` in the service's requirements.txt.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger("harvis.db")

# Arbitrary constant shared by every Harvis process: "harvis" in ASCII.
MIGRATION_LOCK_KEY = 0x686172766973


def migration_files(package: str) -> list[tuple[str, str]]:
    """(version, sql) pairs in order; the version is the file name's stem."""
    files = sorted(
        (f for f in resources.files(package).iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def migrate(conn: asyncpg.Connection, service: str, package: str) -> list[str]:
    """Apply `package`'s pending migrations for `service`; returns the versions applied now."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files(package):
            key = f"{service}/{version}"
            if key in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", key)
            applied.append(version)
    if applied:
        log.info("migrations applied", extra={"service": service, "versions": applied})
    return applied


async def create_pool(
    dsn: str, *, service: str, migrations: str | None, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool on `dsn`, with `migrations` (a package of .sql files) applied first."""
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)
    assert pool is not None
    if migrations:
        async with pool.acquire() as conn:
            await migrate(conn, service, migrations)
    return pool


async def ping(pool: asyncpg.Pool) -> str:
    """A readiness check: the database answers."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return "ok"
