"""The admin role (issue 14: an ordinary user unloaded every model for everyone and read
fleet-wide counters; `is_admin` existed but nothing granted or checked it).

The first admin comes from ADMIN_EMAILS (at signup or login) or from the CLI
(`python -m core_api.admin grant EMAIL`); admin-only routes answer 403 to others."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from chat_support import ChatServer, chat_events
from conftest import ClientFactory, ServiceFactory, bearer, new_user, set_flags, signup

from core_api.store import users

pytestmark = pytest.mark.asyncio

SERVICE_DIR = Path(__file__).resolve().parents[1]
CACHE_S = 0.2


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:10]}@example.com"


def assert_admin_only(r: httpx.Response) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["detail"] and "administrator" in body["message"].lower()


async def run_cli(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core_api.admin",
        *args,
        cwd=SERVICE_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


# ---------------------------------------------------------------- who is refused


async def test_ordinary_user_cannot_unload_models(chat_server: ChatServer) -> None:
    """The front end's "Clear AI RAM" button sends the cookie: an ordinary user gets a clear 403
    and the models stay loaded for everyone else."""
    _, token = await chat_server.user()
    async with chat_server.client(cookies={"access_token": token}) as c:
        await chat_events(c, None, {"message": "load it", "model": "fake-llama"})
        assert chat_server.fake.loaded
        r = await c.post("/api/models/unload", json={"model_type": "all"})
        assert_admin_only(r)
        assert "unload" in r.json()["message"].lower()
        assert chat_server.fake.loaded  # nothing was unloaded


async def test_ordinary_user_cannot_read_fleet_stats(client: httpx.AsyncClient) -> None:
    _, token = await signup(client)
    assert_admin_only(await client.get("/api/auth/stats", headers=bearer(token)))
    assert_admin_only(await client.get("/api/admin/users", headers=bearer(token)))


# ---------------------------------------------------------------- ADMIN_EMAILS


async def test_admin_emails_grant_at_signup(make_chat_server) -> None:
    boss = unique_email("boss")
    server: ChatServer = await make_chat_server(admin_emails=f" someone@example.com , {boss.upper()} ")
    async with server.client() as c:
        r = await c.post("/api/auth/signup", json={**new_user(), "email": boss})
        assert r.status_code == 200
        token = r.json()["access_token"]
        c.cookies.clear()
        await chat_events(c, token, {"message": "load it", "model": "fake-llama"})
        r = await c.post("/api/models/unload", json={"model_type": "all"}, headers=bearer(token))
        assert r.status_code == 200 and r.json()["unloaded_models"] == ["fake-llama:latest"]  # the contract's shape
        assert (await c.get("/api/auth/stats", headers=bearer(token))).status_code == 200


async def test_admin_emails_grant_at_login(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    """An account that existed before its address was listed becomes admin at its next login."""
    before = await make_client(await make_service())
    fields, token = await signup(before)
    assert_admin_only(await before.get("/api/auth/stats", headers=bearer(token)))
    listed = await make_service(admin_emails=fields["email"])
    client = await make_client(listed)
    r = await client.post("/api/auth/login", json={"email": fields["email"], "password": fields["password"]})
    assert r.status_code == 200
    assert (await client.get("/api/auth/stats", headers=bearer(r.json()["access_token"]))).status_code == 200
    found = await users.find_by_email(listed.pool, fields["email"])
    assert found is not None and found.is_admin


# ---------------------------------------------------------------- the CLI


async def test_cli_grants_lists_and_revokes(
    make_service: ServiceFactory, make_client: ClientFactory, database_url: str
) -> None:
    service = await make_service(user_state_cache_s=CACHE_S)
    client = await make_client(service)
    fields, token = await signup(client)
    email = fields["email"]

    code, out = await run_cli(database_url, "grant", email.upper())
    assert code == 0, out
    assert email in out
    await asyncio.sleep(CACHE_S + 0.1)
    # The token the user already holds is an admin's now: no new login needed.
    assert (await client.get("/api/auth/stats", headers=bearer(token))).status_code == 200

    code, out = await run_cli(database_url, "list")
    assert code == 0 and email in out

    code, out = await run_cli(database_url, "revoke", email)
    assert code == 0, out
    await asyncio.sleep(CACHE_S + 0.1)
    assert_admin_only(await client.get("/api/auth/stats", headers=bearer(token)))
    code, out = await run_cli(database_url, "list")
    assert email not in out


async def test_cli_disables_enables_and_deletes(
    make_service: ServiceFactory, make_client: ClientFactory, database_url: str
) -> None:
    service = await make_service(user_state_cache_s=CACHE_S)
    client = await make_client(service)
    fields, token = await signup(client)
    email = fields["email"]
    code, out = await run_cli(database_url, "disable", email)
    assert code == 0, out
    await asyncio.sleep(CACHE_S + 0.1)
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 401
    code, out = await run_cli(database_url, "enable", email)
    assert code == 0, out
    await asyncio.sleep(CACHE_S + 0.1)
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 200
    code, out = await run_cli(database_url, "delete", email)
    assert code == 2 and "--yes" in out  # destructive: asks for confirmation
    code, out = await run_cli(database_url, "delete", email, "--yes")
    assert code == 0, out
    assert await users.find_by_email(service.pool, email) is None


async def test_cli_errors_are_clear(database_url: str) -> None:
    code, out = await run_cli(database_url, "grant", unique_email("nobody"))
    assert code == 1 and "no user" in out.lower()
    code, out = await run_cli(database_url, "grant")
    assert code == 2 and "email" in out.lower()  # argparse's usage error
    code, out = await run_cli("", "list")
    assert code == 2 and "DATABASE_URL" in out


# ---------------------------------------------------------------- admin routes for users


async def admin_and_user(
    make_service: ServiceFactory, make_client: ClientFactory, pool: asyncpg.Pool
) -> tuple[httpx.AsyncClient, str, dict[str, str], str]:
    service = await make_service(user_state_cache_s=CACHE_S)
    client = await make_client(service)
    admin_fields, admin_token = await signup(client)
    await set_flags(pool, admin_fields["email"], is_admin=True)
    service.user_states.forget_all()
    user_fields, user_token = await signup(client)
    return client, admin_token, user_fields, user_token


async def test_admin_disables_and_deletes_a_user(
    make_service: ServiceFactory, make_client: ClientFactory, pool: asyncpg.Pool
) -> None:
    client, admin, fields, token = await admin_and_user(make_service, make_client, pool)
    listed = await client.get("/api/admin/users", params={"limit": 500}, headers=bearer(admin))
    assert listed.status_code == 200
    row = next(u for u in listed.json()["users"] if u["email"] == fields["email"])
    assert row["is_active"] is True and row["is_admin"] is False and "password_hash" not in row
    uid = row["id"]

    r = await client.patch(f"/api/admin/users/{uid}", json={"is_active": False}, headers=bearer(admin))
    assert r.status_code == 200 and r.json()["is_active"] is False
    # At once on this replica (the change went through it), not after the cache time.
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 401
    r = await client.post("/api/auth/login", json={"email": fields["email"], "password": fields["password"]})
    assert r.status_code == 403

    r = await client.patch(f"/api/admin/users/{uid}", json={"is_active": True}, headers=bearer(admin))
    assert r.status_code == 200
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 200

    r = await client.delete(f"/api/admin/users/{uid}", headers=bearer(admin))
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 401
    assert (await client.delete(f"/api/admin/users/{uid}", headers=bearer(admin))).status_code == 404


async def test_admin_cannot_lock_themselves_out(
    make_service: ServiceFactory, make_client: ClientFactory, pool: asyncpg.Pool
) -> None:
    client, admin, _, _ = await admin_and_user(make_service, make_client, pool)
    me = (await client.get("/api/auth/me", headers=bearer(admin))).json()
    for method, body in (("PATCH", {"is_active": False}), ("PATCH", {"is_admin": False}), ("DELETE", None)):
        r = await client.request(method, f"/api/admin/users/{me['id']}", json=body, headers=bearer(admin))
        assert r.status_code == 409, (method, body, r.text)
        assert "your own account" in r.json()["message"]
    assert (await client.get("/api/auth/stats", headers=bearer(admin))).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/admin/users/99999999999999999999999", {"is_active": False}),
        ("PATCH", "/api/admin/users/0", {"is_active": False}),
        ("PATCH", "/api/admin/users/abc", {"is_active": False}),
        ("PATCH", "/api/admin/users/1", {"is_active": "maybe"}),
        ("DELETE", "/api/admin/users/-5", None),
        ("GET", "/api/admin/users?offset=820619130998817816576", None),
        ("GET", "/api/admin/users?limit=0", None),
    ],
)
async def test_admin_routes_reject_bad_input_with_422(
    make_service: ServiceFactory, make_client: ClientFactory, pool: asyncpg.Pool, method: str, path: str, body: object
) -> None:
    client, admin, _, _ = await admin_and_user(make_service, make_client, pool)
    r = await client.request(method, path, json=body, headers=bearer(admin))
    assert r.status_code == 422, r.text
    assert r.json()["message"]


async def test_unknown_user_is_404(
    make_service: ServiceFactory, make_client: ClientFactory, pool: asyncpg.Pool
) -> None:
    client, admin, _, _ = await admin_and_user(make_service, make_client, pool)
    r = await client.patch("/api/admin/users/987654321", json={"is_admin": True}, headers=bearer(admin))
    assert r.status_code == 404 and r.json()["message"]
