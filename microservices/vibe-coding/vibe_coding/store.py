"""Sessions in PostgreSQL. Every query is scoped to the owner: another user's
session id behaves exactly like one that does not exist. A session being deleted
('deleting') is already invisible to its owner but keeps its sandbox uid until the
service has made sure nothing runs as it any more."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from harvis_common.replicas import mint_session_id, owner_ordinal

from .capacity import Refused

COLUMNS = "id, user_id, name, language, template, status, created_at, updated_at, last_run_at, sandbox_uid"
_INSERT = (
    "INSERT INTO vibe_sessions (id, user_id, name, language, template, sandbox_uid)"  # noqa: S608 - constant columns
    f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
)
# The lowest uid no session holds (a deleted session's comes back once it is gone): 0, or the
# first one after a held one whose successor is not held. Walks the unique index in order and
# stops at the first gap.
_FREE_UID = """
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM vibe_sessions WHERE sandbox_uid = 0) THEN 0 ELSE (
    SELECT uid + 1 FROM (
        SELECT sandbox_uid AS uid, lead(sandbox_uid) OVER (ORDER BY sandbox_uid) AS after FROM vibe_sessions
    ) AS held WHERE after IS NULL OR after > uid + 1 ORDER BY uid LIMIT 1
) END
"""
# Session creations take turns (one short transaction each, across replicas too), so counting
# a user's sessions and picking a free uid cannot race; "vibe" in ASCII.
CREATE_LOCK_KEY = 0x76696265
LIVE = "status <> 'deleting'"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def session_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "session_id": str(row["id"]),
        "id": str(row["id"]),
        "name": row["name"],
        "language": row["language"],
        "template": row["template"],
        "status": row["status"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "last_run_at": _iso(row["last_run_at"]),
    }


def parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError):
        return None


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, replica_ordinal: int = 0) -> None:
        self.pool = pool
        # A session's workspace and sandboxes are on the replica that made it; its id says which.
        self.replica_ordinal = replica_ordinal

    async def create(
        self, user_id: int, name: str, language: str, template: str | None, *, max_sessions: int, uid_count: int
    ) -> asyncpg.Record:
        """A new session with a sandbox uid of its own; Refused(429) when the user already has
        `max_sessions`, Refused(503) when every uid of the pool is taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", CREATE_LOCK_KEY)
            have = await conn.fetchval(
                f"SELECT count(*) FROM vibe_sessions WHERE user_id = $1 AND {LIVE}",  # noqa: S608 - constant
                user_id,
            )
            if have >= max_sessions:
                raise Refused(
                    429,
                    f"You have {have} sessions (at most {max_sessions}): delete one before creating another",
                    retry_after_s=60,
                )
            slot = await conn.fetchval(_FREE_UID)
            if slot >= uid_count:
                raise Refused(503, "This server has no room for another session right now; try again later", 60)
            row = await conn.fetchrow(_INSERT, self._new_id(), user_id, name, language, template, slot)
        assert row is not None
        return row

    def _new_id(self) -> uuid.UUID:
        return uuid.UUID(mint_session_id(self.replica_ordinal))

    async def get(self, user_id: int, session_id: str) -> asyncpg.Record | None:
        sid = parse_id(session_id)
        if sid is None:
            return None
        return await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM vibe_sessions WHERE id = $1 AND user_id = $2 AND {LIVE}",  # noqa: S608 - constant
            sid,
            user_id,
        )

    async def list(self, user_id: int, limit: int = 200) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            f"SELECT {COLUMNS} FROM vibe_sessions WHERE user_id = $1 AND {LIVE}"  # noqa: S608 - constant
            " ORDER BY updated_at DESC LIMIT $2",
            user_id,
            limit,
        )

    async def update(self, user_id: int, session_id: str, **changes: Any) -> asyncpg.Record | None:
        sid = parse_id(session_id)
        if sid is None:
            return None
        fields = {k: v for k, v in changes.items() if v is not None and k in ("name", "language", "status")}
        # Column names come from the fixed tuple above; values are bound parameters.
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(fields, start=3))
        sql = (
            f"UPDATE vibe_sessions SET {sets + ', ' if sets else ''}updated_at = now()"  # noqa: S608
            f" WHERE id = $1 AND user_id = $2 AND {LIVE} RETURNING {COLUMNS}"
        )
        return await self.pool.fetchrow(sql, sid, user_id, *fields.values())

    async def touch_run(self, user_id: int, session_id: str) -> None:
        sid = parse_id(session_id)
        if sid is not None:
            await self.pool.execute(
                "UPDATE vibe_sessions SET last_run_at = now(), updated_at = now() WHERE id = $1 AND user_id = $2",
                sid,
                user_id,
            )

    async def begin_delete(self, user_id: int, session_id: str) -> asyncpg.Record | None:
        """Hide the session from its owner (the first step of deleting it); None if not theirs."""
        sid = parse_id(session_id)
        if sid is None:
            return None
        return await self.pool.fetchrow(
            f"UPDATE vibe_sessions SET status = 'deleting', updated_at = now()"  # noqa: S608 - constant
            f" WHERE id = $1 AND user_id = $2 AND {LIVE} RETURNING {COLUMNS}",
            sid,
            user_id,
        )

    async def deleting(self) -> list[asyncpg.Record]:
        """This replica's sessions whose deletion a previous run of it did not finish (another
        replica's may be being deleted right now, by that replica, from its own disk)."""
        rows = await self.pool.fetch(f"SELECT {COLUMNS} FROM vibe_sessions WHERE status = 'deleting'")  # noqa: S608
        return [r for r in rows if owner_ordinal(str(r["id"])) == self.replica_ordinal]

    async def remove(self, session_id: uuid.UUID) -> None:
        """The last step of deleting: the row goes, and with it the hold on its sandbox uid."""
        await self.pool.execute("DELETE FROM vibe_sessions WHERE id = $1 AND status = 'deleting'", session_id)
