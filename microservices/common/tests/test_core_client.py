"""harvis_common.core_client against a stub of core-api's internal API (history, token exchange)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from harvis_common.core_client import CoreClient, CoreClientError
from harvis_common.internal_auth import HEADER
from harvis_testkit import serve_app


@pytest.fixture
async def stub():
    seen: list[tuple[str, str, Any]] = []

    async def exchange(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(("exchange", request.headers.get(HEADER, ""), body))
        if request.headers.get(HEADER) != "tok":
            return web.json_response({"detail": "Missing or invalid internal authentication"}, status=401)
        return web.json_response({"session_id": body.get("session_id") or "new-session", "message_id": 7})

    async def messages(request: web.Request) -> web.Response:
        seen.append(("messages", request.headers.get(HEADER, ""), dict(request.query)))
        if request.match_info["sid"] == "missing":
            return web.json_response({"detail": "Chat session not found"}, status=404)
        return web.json_response(
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                          {"role": "assistant", "content": "a"}]}
        )  # fmt: skip

    async def token(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(("token", request.headers.get(HEADER, ""), body))
        if body["audience"] == "vibe-coding":
            return web.json_response({"detail": "voice-service may not act at vibe-coding"}, status=403)
        if body["audience"] == "broken":
            return web.json_response({"no": "token"})
        return web.json_response({"token": f"for-{body['audience']}", "audience": body["audience"]})

    app = web.Application()
    app.router.add_post("/internal/token", token)
    app.router.add_post("/internal/history/exchange", exchange)
    app.router.add_get("/internal/history/sessions/{sid}/messages", messages)
    runner, url = await serve_app(app)
    yield url, seen
    await runner.cleanup()


async def test_save_exchange_and_recent(stub) -> None:
    url, seen = stub
    client = CoreClient(url + "/")
    try:
        saved = await client.save_exchange(
            "tok", user_message={"content": "q"}, assistant_message={"content": "a"}, title="T"
        )
        assert saved["session_id"] == "new-session"
        _, token, body = seen[-1]
        assert token == "tok" and body["title"] == "T" and body["assistant_message"] == {"content": "a"}
        assert await client.recent("tok", "sid", limit=5) == [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ]
        assert seen[-1][2] == {"limit": "5"}
        assert await client.recent("tok", "missing") == []
        with pytest.raises(CoreClientError, match="401"):
            await client.save_exchange("bad", user_message={"content": "q"})
        with pytest.raises(CoreClientError):
            await client.save_exchange("", user_message={"content": "q"})
    finally:
        await client.close()


async def test_delegate(stub) -> None:
    url, seen = stub
    client = CoreClient(url)
    try:
        assert await client.delegate("tok", "research-service") == "for-research-service"
        assert seen[-1] == ("token", "tok", {"audience": "research-service"})
        with pytest.raises(CoreClientError, match=r"403.*may not act"):
            await client.delegate("tok", "vibe-coding")
        with pytest.raises(CoreClientError, match="no token"):
            await client.delegate("tok", "broken")
        with pytest.raises(CoreClientError, match="no internal token"):
            await client.delegate("", "research-service")
    finally:
        await client.close()


async def test_unreachable_is_an_error() -> None:
    client = CoreClient("http://127.0.0.1:9", timeout_s=2)
    try:
        with pytest.raises(CoreClientError, match="unreachable"):
            await client.save_exchange("tok", user_message={"content": "q"})
    finally:
        await client.close()
