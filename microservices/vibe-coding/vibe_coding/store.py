"""Sessions in PostgreSQL. Every query is scoped to the owner: another user's
session id behaves exactly like one that does not exist."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

COLUMNS = "id, user_id, name, language, template, status, created_at, updated_at, last_run_at"
_INSERT = (
    f"INSERT INTO vibe_sessions (id, user_id, name, language, template) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"  # noqa: S608
)


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
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, user_id: int, name: str, language: str, template: str | None) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            _INSERT,
            uuid.uuid4(),
            user_id,
            name,
            language,
            template,
        )
        assert row is not None
        return row

    async def get(self, user_id: int, session_id: str) -> asyncpg.Record | None:
        sid = parse_id(session_id)
        if sid is None:
            return None
        return await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM vibe_sessions WHERE id = $1 AND user_id = $2",  # noqa: S608 - constant columns
            sid,
            user_id,
        )

    async def list(self, user_id: int, limit: int = 200) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            f"SELECT {COLUMNS} FROM vibe_sessions WHERE user_id = $1 ORDER BY updated_at DESC LIMIT $2",  # noqa: S608
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
            f" WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
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

    async def delete(self, user_id: int, session_id: str) -> bool:
        sid = parse_id(session_id)
        if sid is None:
            return False
        result = await self.pool.execute("DELETE FROM vibe_sessions WHERE id = $1 AND user_id = $2", sid, user_id)
        return result.endswith(" 1")
