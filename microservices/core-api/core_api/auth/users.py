"""The `users` table: the queries the auth layer needs, nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

_COLUMNS = "id, username, email, password_hash, avatar, is_admin, created_at, last_login_at"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    email: str
    password_hash: str
    avatar: str | None
    is_admin: bool
    created_at: datetime
    last_login_at: datetime | None

    def public(self) -> dict[str, object]:
        """What `/api/auth/me` shows (never the hash)."""
        return {"id": self.id, "username": self.username, "email": self.email, "avatar": self.avatar}


def _user(row: asyncpg.Record | None) -> User | None:
    return User(**dict(row)) if row is not None else None


async def find_by_email(pool: asyncpg.Pool, email: str) -> User | None:
    return _user(await pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE email = $1", email.lower()))  # noqa: S608


async def find_by_id(pool: asyncpg.Pool, user_id: int) -> User | None:
    return _user(await pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id))  # noqa: S608


async def exists(pool: asyncpg.Pool, username: str, email: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1) OR email = $2)",
            username,
            email.lower(),
        )
    )


async def create(pool: asyncpg.Pool, *, username: str, email: str, password_hash: str) -> User | None:
    """The new user (already counted as logged in), or None if the username or email is taken.

    `ON CONFLICT DO NOTHING` covers both unique indexes, so two simultaneous
    signups for the same name cannot both succeed nor raise.
    """
    row = await pool.fetchrow(
        "INSERT INTO users (username, email, password_hash, last_login_at) VALUES ($1, $2, $3, now())"  # noqa: S608
        f" ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
        username,
        email.lower(),
        password_hash,
    )
    return _user(row)


async def record_login(pool: asyncpg.Pool, user_id: int, new_password_hash: str | None = None) -> None:
    if new_password_hash is None:
        await pool.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)
    else:  # the cost factor was raised since this hash was made
        await pool.execute(
            "UPDATE users SET last_login_at = now(), password_hash = $2, updated_at = now() WHERE id = $1",
            user_id,
            new_password_hash,
        )


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    row = await pool.fetchrow(
        "SELECT count(*) AS total,"
        " count(*) FILTER (WHERE last_login_at > now() - interval '24 hours') AS active_24h,"
        " count(*) FILTER (WHERE last_login_at > now() - interval '30 days') AS active_30d,"
        " count(*) FILTER (WHERE is_admin) AS admins"
        " FROM users"
    )
    assert row is not None
    return {k: int(v) for k, v in dict(row).items()}
