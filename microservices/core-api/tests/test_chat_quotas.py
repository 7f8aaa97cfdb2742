"""Issue 14: chat turns per user per hour (`CHAT_TURNS_PER_HOUR`), shared by /api/chat and
/api/vision-chat. A burst of parallel turns for one user lets exactly the quota through (the
model is called that many times, nothing else is saved); the rest get a JSON 429 with
`Retry-After` *before* any stream starts; another user is unaffected. Both backends:
in-process, and the real Redis (keys under a prefix of this test's own)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from chat_support import ChatServer, bearer, chat_events
from conftest import REDIS_URL
from redis.asyncio import Redis

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, redis: Redis, redis_prefix: str) -> AsyncIterator[dict[str, Any]]:
    if request.param == "memory":
        yield {"redis_url": ""}
        return
    yield {"redis_url": REDIS_URL, "redis_key_prefix": redis_prefix}
    keys = [k async for k in redis.scan_iter(match=redis_prefix + "quota:*")]
    assert keys, "the chat turns never reached Redis (a silent in-process fallback?)"


def assert_quota_refusal(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"  # JSON, not an SSE error
    body = r.json()
    assert set(body) == {"detail", "message"} and body["message"] == body["detail"]
    assert "3 chat turns per hour" in body["message"] and "resets in" in body["message"], body
    assert 3500 < int(r.headers["Retry-After"]) <= 3600


async def chat(c: httpx.AsyncClient, token: str, i: int, vision: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"message": f"turn {i}", "model": "fake-llama"}
    if vision:
        body["images"] = [PNG]
    r, events, _ = await chat_events(c, token, body, path="/api/vision-chat" if vision else "/api/chat")
    if r.status_code == 200:
        assert events[-1]["status"] == "complete", events[-1]
    return r


async def test_parallel_chat_turns_hold_the_quota_per_user(make_chat_server: Any, backend: dict[str, Any]) -> None:
    server: ChatServer = await make_chat_server(chat_turns_per_hour=3, **backend)
    _, token = await server.user()
    _, other = await server.user()
    async with server.client() as c:
        burst = await asyncio.gather(*(chat(c, token, i, vision=i % 2 == 1) for i in range(12)))
        assert sorted(r.status_code for r in burst) == [200] * 3 + [429] * 9
        for r in burst:
            if r.status_code == 429:
                assert_quota_refusal(r)
        assert server.fake.stats["started"] == 3  # the model ran for the admitted turns only
        sessions = (await c.get("/api/chat-history/sessions", headers=bearer(token))).json()
        assert len(sessions) == 3  # a refused turn saved nothing

        # Another user has a quota of their own, whichever route they use.
        theirs = await asyncio.gather(*(chat(c, other, i, vision=i == 0) for i in range(5)))
        assert sorted(r.status_code for r in theirs) == [200, 200, 200, 429, 429]
        assert server.fake.stats["started"] == 6


async def test_bad_input_costs_no_turn(make_chat_server: Any) -> None:
    server: ChatServer = await make_chat_server(chat_turns_per_hour=1)
    _, token = await server.user()
    async with server.client() as c:
        for body in ({"message": "   "}, {"message": "x", "temperature": 9}):
            r = await c.post("/api/chat", json=body, headers=bearer(token))
            assert r.status_code == 422, r.text
        r = await c.post("/api/vision-chat", json={"message": "x", "images": ["!!"]}, headers=bearer(token))
        assert r.status_code == 422
        assert (await chat(c, token, 0)).status_code == 200
        refused = await chat(c, token, 1)
        assert refused.status_code == 429 and "chat turns per hour" in refused.json()["message"]
