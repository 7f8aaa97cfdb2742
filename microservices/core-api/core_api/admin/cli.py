"""The admin command line, run on the server with core-api's DATABASE_URL:

    python -m core_api.admin grant EMAIL      # make EMAIL an administrator
    python -m core_api.admin revoke EMAIL     # take the role away
    python -m core_api.admin disable EMAIL    # refuse their logins and tokens
    python -m core_api.admin enable EMAIL
    python -m core_api.admin delete EMAIL --yes   # the account and its chat history
    python -m core_api.admin list             # administrators and disabled accounts

Changes count for tokens already issued within USER_STATE_CACHE_S (default 5 s):
no restart, no new login. With docker compose:
`docker compose exec core-api python -m core_api.admin grant you@example.com`.
The database schema is brought up to date first, so this works before core-api
has ever started. Exit status: 0 done, 1 no such user, 2 usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg

from harvis_common.db import migrate

from ..settings import Settings
from ..store import users


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core_api.admin",
        description="Manage Harvis administrators and accounts (uses DATABASE_URL).",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for action, text in (
        ("grant", "make the user an administrator"),
        ("revoke", "take the administrator role away"),
        ("disable", "refuse the user's logins and tokens"),
        ("enable", "let a disabled user in again"),
        ("delete", "delete the account and its chat history"),
    ):
        cmd = sub.add_parser(action, help=text)
        cmd.add_argument("email", help="the account's email address")
        if action == "delete":
            cmd.add_argument("--yes", action="store_true", help="really delete (required)")
    sub.add_parser("list", help="list administrators and disabled accounts")
    return parser


def _line(user: users.User) -> str:
    flags = ["admin" if user.is_admin else "user", "active" if user.is_active else "DISABLED"]
    return f"{user.id}\t{user.email}\t{user.username}\t{' '.join(flags)}"


async def _run(args: argparse.Namespace, dsn: str) -> int:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, command_timeout=30)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, "core-api", "core_api.migrations")
        if args.action == "list":
            for user in await users.privileged(pool):
                print(_line(user))
            return 0
        email = args.email.strip().lower()
        user = await users.find_by_email(pool, email)
        if user is None:
            print(f"no user with email {email}", file=sys.stderr)
            return 1
        if args.action == "delete":
            await users.delete(pool, user.id)
            print(f"deleted\t{_line(user)}")
            return 0
        changed = await users.update(
            pool,
            user.id,
            is_admin={"grant": True, "revoke": False}.get(args.action),
            is_active={"enable": True, "disable": False}.get(args.action),
        )
        assert changed is not None
        print(f"{args.action}\t{_line(changed)}")
        return 0
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.action == "delete" and not args.yes:
        parser.error("delete removes the account and its chat history: add --yes")
    dsn = Settings().database_url
    if not dsn:
        parser.error("DATABASE_URL is not set (core-api's PostgreSQL DSN)")
    return asyncio.run(_run(args, dsn))
