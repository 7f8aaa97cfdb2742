"""The n8n API key, provisioned on first need from the owner's credentials and kept in the key
file, against a stub of the n8n REST routes it uses (the real n8n: tests/e2e/test_n8n.py, where
the native fleet relies on exactly this)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from harvis_testkit import serve_app
from n8n_integration.n8n_client import N8nClient, N8nError

PASSWORD = "Hv1-owner-password"


class StubN8n:
    def __init__(self) -> None:
        self.owner: str | None = None
        self.keys: list[str] = []
        self.calls: list[str] = []

    async def setup(self, request: web.Request) -> web.Response:
        self.calls.append("setup")
        if self.owner is not None:
            return web.json_response({"message": "Instance owner already setup"}, status=400)
        self.owner = (await request.json())["password"]
        return web.json_response({"data": {}})

    async def login(self, request: web.Request) -> web.Response:
        self.calls.append("login")
        if (await request.json())["password"] != self.owner:
            return web.json_response({"message": "Wrong username or password"}, status=401)
        resp = web.json_response({"data": {}})
        resp.set_cookie("n8n-auth", "session")
        return resp

    async def scopes(self, request: web.Request) -> web.Response:
        return web.json_response({"data": ["workflow:read", "workflow:list"]})

    async def create_key(self, request: web.Request) -> web.Response:
        self.calls.append("create-key")
        await asyncio.sleep(0.05)  # long enough for concurrent first calls to overlap
        if request.cookies.get("n8n-auth") != "session":
            return web.json_response({"message": "Unauthorized"}, status=401)
        key = f"key-{len(self.keys) + 1}"
        self.keys.append(key)
        return web.json_response({"data": {"rawApiKey": key}})

    async def workflows(self, request: web.Request) -> web.Response:
        if request.headers.get("X-N8N-API-KEY") not in self.keys:
            return web.json_response({"message": "unauthorized"}, status=401)
        return web.json_response({"data": [{"id": "1", "name": "w"}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/rest/owner/setup", self.setup)
        app.router.add_post("/rest/login", self.login)
        app.router.add_get("/rest/api-keys/scopes", self.scopes)
        app.router.add_post("/rest/api-keys", self.create_key)
        app.router.add_get("/api/v1/workflows", self.workflows)
        return app


@pytest.fixture
async def n8n() -> Any:
    stub = StubN8n()
    runner, url = await serve_app(stub.app())
    yield stub, url
    await runner.cleanup()


async def test_provisioned_once_kept_in_the_key_file_and_reused(n8n: Any, tmp_path: Path) -> None:
    stub, url = n8n
    key_file = tmp_path / "n8n" / "api-key"
    client = N8nClient(url, "", api_key_file=str(key_file), owner_email="o@x", owner_password=PASSWORD)
    try:
        lists = await asyncio.gather(*(client.list_workflows() for _ in range(5)))
        assert all(out == [{"id": "1", "name": "w"}] for out in lists)
        assert stub.keys == ["key-1"] and stub.calls.count("create-key") == 1  # concurrent first calls: one key
        assert key_file.read_text() == "key-1\n" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    finally:
        await client.close()

    # A restart (a new client) reuses the stored key: no new owner login, no new key.
    calls = len(stub.calls)
    again = N8nClient(url, "", api_key_file=str(key_file), owner_email="o@x", owner_password=PASSWORD)
    try:
        assert await again.list_workflows() == [{"id": "1", "name": "w"}]
        assert len(stub.calls) == calls and stub.keys == ["key-1"]
    finally:
        await again.close()


async def test_without_credentials_or_n8n_a_clear_503(n8n: Any, tmp_path: Path) -> None:
    _, url = n8n
    bare = N8nClient(url, "", api_key_file=str(tmp_path / "missing"))
    with pytest.raises(N8nError, match="no N8N_OWNER_PASSWORD") as err:
        await bare.list_workflows()
    assert err.value.status == 503
    await bare.close()

    down = N8nClient("http://127.0.0.1:9", "", owner_email="o@x", owner_password=PASSWORD, timeout_s=2)
    with pytest.raises(N8nError, match="not ready") as err:
        await down.list_workflows()
    assert err.value.status == 503 and not down.api_key  # the next call tries again
    await down.close()


async def test_a_wrong_owner_password_says_so(n8n: Any) -> None:
    stub, url = n8n
    stub.owner = "someone-else's"
    client = N8nClient(url, "", owner_email="o@x", owner_password=PASSWORD)
    with pytest.raises(N8nError, match="check N8N_OWNER_PASSWORD"):
        await client.list_workflows()
    assert stub.keys == []
    await client.close()
