"""The audit trail (core_api/audit.py): who acted for whom, recorded off the request path,
readable by administrators only (`GET /api/admin/audit`), never holding bodies or tokens,
deleted past its retention."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn
from chat_support import PRIVATE_KEY, internal_token
from conftest import bearer, make_settings, new_user, set_flags
from gateway_support import free_port

from core_api.app import create_app
from core_api.audit import DROPPED, AuditLog
from harvis_common.internal_auth import HEADER

pytestmark = pytest.mark.asyncio


class Served:
    def __init__(self, url: str, audit: AuditLog) -> None:
        self.url, self.audit = url, audit

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, trust_env=False)


@pytest_asyncio.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    """core-api as uvicorn serves it (the gateway around the app, its lifespan), on a port;
    the services behind the gateway are not running."""
    down = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        database_url=database_url,
        internal_auth_private_key=PRIVATE_KEY,
        **{f"{name}_url": down for name in ("research_service", "voice_service", "browser_service")},
        **{f"{name}_url": down for name in ("mcp_service", "n8n_integration", "vibe_coding")},
    )
    gateway = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.ensure_future(server.serve())
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    assert gateway.audit is not None
    try:
        yield Served(f"http://127.0.0.1:{port}", gateway.audit)
    finally:
        server.should_exit = True
        await task


async def signed_up(c: httpx.AsyncClient, pool: asyncpg.Pool, *, admin: bool = False) -> tuple[int, str]:
    fields = new_user()
    r = await c.post("/api/auth/signup", json=fields)
    assert r.status_code == 200, r.text
    c.cookies.clear()
    token = r.json()["access_token"]
    if admin:  # then log in again: the login reads the flag (signup primed the state as not admin)
        await set_flags(pool, fields["email"], is_admin=True)
        r = await c.post("/api/auth/login", json={"email": fields["email"], "password": fields["password"]})
        assert r.status_code == 200, r.text
        c.cookies.clear()
        token = r.json()["access_token"]
    return (await c.get("/api/auth/me", headers=bearer(token))).json()["id"], token


async def events(c: httpx.AsyncClient, token: str, **params: Any) -> list[dict[str, Any]]:
    r = await c.get("/api/admin/audit", params=params, headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["events"]


async def test_gateway_hops_and_internal_calls_are_recorded(served: Served, pool: asyncpg.Pool) -> None:
    async with served.client() as c:
        alice, alice_token = await signed_up(c, pool)
        _, admin_token = await signed_up(c, pool, admin=True)
        # A hop to a service (down here: the outcome says so), with a query string and a body
        # that must not be kept.
        r = await c.post(
            "/api/research-chat?secret=q-s3cret",
            json={"message": "b0dy-s3cret"},
            headers={**bearer(alice_token), "X-Request-ID": "rid-audit-1"},
        )
        assert r.status_code == 503
        # A service acting for alice on the internal API: a token exchange allowed, one refused,
        # a history write.
        voice = internal_token("voice-service", alice)
        assert (
            await c.post("/internal/token", json={"audience": "research-service"}, headers={HEADER: voice})
        ).status_code == 200
        assert (
            await c.post("/internal/token", json={"audience": "vibe-coding"}, headers={HEADER: voice})
        ).status_code == 403
        saved = {"user_message": {"content": "m3ssage-s3cret"}}
        assert (await c.post("/internal/history/exchange", json=saved, headers={HEADER: voice})).status_code == 200
        await served.audit.flush()

        mine = await events(c, admin_token, user=alice)
        got = [(e["service"], e["action"], e["target"], e["outcome"]) for e in mine]
        assert got == [
            ("voice-service", "history_write", "/internal/history/exchange", "200"),
            ("voice-service", "token_exchange", "vibe-coding", "403"),
            ("voice-service", "token_exchange", "research-service", "200"),
            ("research-service", "request", "POST /api/research-chat", "503"),
        ]
        assert mine[-1]["request_id"] == "rid-audit-1" and all(e["user_id"] == alice for e in mine)
        assert "s3cret" not in json.dumps(mine)  # no query strings, bodies or tokens
        assert voice not in json.dumps(mine)
        # Filters: by service, by action, since, and paging back.
        assert [e["action"] for e in await events(c, admin_token, user=alice, service="research-service")] == [
            "request"
        ]
        assert len(await events(c, admin_token, user=alice, action="token_exchange")) == 2
        future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        assert await events(c, admin_token, user=alice, since=future) == []
        page = await c.get("/api/admin/audit", params={"user": alice, "limit": 2}, headers=bearer(admin_token))
        body = page.json()
        assert len(body["events"]) == 2 and body["retention_days"] == 90
        rest = await events(c, admin_token, user=alice, before_id=body["next_before_id"])
        assert [e["action"] for e in rest] == ["token_exchange", "request"]


async def test_services_report_what_they_did_for_the_user(served: Served, pool: asyncpg.Pool) -> None:
    async with served.client() as c:
        alice, _ = await signed_up(c, pool)
        _, admin_token = await signed_up(c, pool, admin=True)
        vibe = internal_token("vibe-coding", alice)
        report = {"action": "sandbox_run", "target": "python session 1234", "outcome": "completed"}
        r = await c.post("/internal/audit", json=report, headers={HEADER: vibe})
        assert r.status_code == 202 and r.json() == {"recorded": True}
        # core-api's own actions cannot be reported, nor free text, nor without a service's token.
        for bad in ({**report, "action": "token_exchange"}, {**report, "action": "Drop table"},
                    {**report, "outcome": "ok; rm -rf"}, {**report, "target": "x" * 201}):  # fmt: skip
            assert (await c.post("/internal/audit", json=bad, headers={HEADER: vibe})).status_code == 422, bad
        assert (await c.post("/internal/audit", json=report)).status_code == 401
        await served.audit.flush()
        (event,) = await events(c, admin_token, user=alice, action="sandbox_run")
        assert (event["service"], event["target"], event["outcome"]) == (
            "vibe-coding",
            "python session 1234",
            "completed",
        )


async def test_only_administrators_read_it(served: Served, pool: asyncpg.Pool) -> None:
    async with served.client() as c:
        _, token = await signed_up(c, pool)
        r = await c.get("/api/admin/audit", headers=bearer(token))
        assert r.status_code == 403
        assert (await c.get("/api/admin/audit")).status_code == 401
        _, admin_token = await signed_up(c, pool, admin=True)
        for bad in ({"user": 0}, {"limit": 5000}, {"since": "yesterday"}, {"service": "x" * 65}):
            assert (await c.get("/api/admin/audit", params=bad, headers=bearer(admin_token))).status_code == 422


async def test_unauthenticated_hops_are_not_attributed(served: Served, pool: asyncpg.Pool) -> None:
    async with served.client() as c:
        before = len(served.audit._buffer)
        assert (await c.get("/api/research/diagnostics/whoami")).status_code == 401
        assert len(served.audit._buffer) == before


async def test_retention_deletes_old_events(pool: asyncpg.Pool) -> None:
    audit = AuditLog(pool, retention_days=30)
    await pool.execute(
        "INSERT INTO audit_events (at, user_id, service, action, outcome) VALUES"
        " (now() - interval '31 days', 424242, 'old-service', 'request', '200'),"
        " (now() - interval '29 days', 424242, 'kept-service', 'request', '200')"
    )
    assert await audit.purge() >= 1
    left = await audit.query(user_id=424242)
    assert [e["service"] for e in left] == ["kept-service"]


async def test_the_buffer_is_bounded_and_the_writer_flushes(pool: asyncpg.Pool) -> None:
    audit = AuditLog(pool, retention_days=30, flush_s=0.05, buffer_max=3)
    dropped = DROPPED._value.get()
    for n in range(5):
        audit.record(515151, "svc", "request", f"GET /x/{n}", 200, None)
    assert DROPPED._value.get() == dropped + 2
    await audit.start()
    try:
        for _ in range(100):
            if len(await audit.query(user_id=515151)) == 3:
                break
            await asyncio.sleep(0.05)
        assert [e["target"] for e in await audit.query(user_id=515151)] == ["GET /x/2", "GET /x/1", "GET /x/0"]
    finally:
        await audit.stop()
