"""Bad input is a clear 4xx JSON, never a 500 (issue 14: schemathesis found
`GET /api/chat-history/sessions?offset=820619130998817816576` → 500, an integer
past PostgreSQL's bigint)."""

from __future__ import annotations

from typing import Any

import pytest
from chat_support import ChatServer

pytestmark = pytest.mark.asyncio

HUGE = "820619130998817816576"  # the fuzzer's number: > 2**63


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "path",
    [
        f"/api/chat-history/sessions?offset={HUGE}",
        f"/api/chat-history/sessions?limit={HUGE}",
        "/api/chat-history/sessions?offset=-1",
        "/api/chat-history/sessions?offset=1e3",
        f"/api/chat-history/sessions/00000000-0000-0000-0000-000000000000?offset={HUGE}",
        f"/api/chat-history/sessions/00000000-0000-0000-0000-000000000000?limit={HUGE}",
        f"/api/chat-history/search?query=x&limit={HUGE}",
        f"/api/artifacts/?limit={HUGE}",
    ],
)
async def test_out_of_range_integers_are_422(chat_server: ChatServer, path: str) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        r = await c.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422, (path, r.status_code, r.text)
    body = r.json()
    assert body["detail"] and body["message"]


async def test_offsets_up_to_the_bound_still_work(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        r = await c.get(
            "/api/chat-history/sessions?offset=1000000&limit=200", headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize(
    "metadata",
    [
        {"n": 2**70},  # JSON allows it; orjson (and jsonb via it) does not
        {"deep": nested(300)},  # past orjson's depth limit
    ],
    ids=["huge-int", "deep"],
)
async def test_unstorable_message_metadata_is_422(chat_server: ChatServer, metadata: dict[str, Any]) -> None:
    _, token = await chat_server.user()
    headers = {"Authorization": f"Bearer {token}"}
    async with chat_server.client() as c:
        session = (await c.post("/api/chat-history/sessions", json={"title": "t"}, headers=headers)).json()
        body = {"session_id": session["id"], "role": "user", "content": "hi", "metadata": metadata}
        r = await c.post("/api/chat-history/messages", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["message"]


@pytest.mark.parametrize("field", ["content", "title"])
async def test_nul_characters_are_422(chat_server: ChatServer, field: str) -> None:
    """PostgreSQL text cannot hold U+0000: refused as bad input, not a database error."""
    _, token = await chat_server.user()
    headers = {"Authorization": f"Bearer {token}"}
    async with chat_server.client() as c:
        if field == "title":
            r = await c.post("/api/chat-history/sessions", json={"title": "a\u0000b"}, headers=headers)
        else:
            session = (await c.post("/api/chat-history/sessions", json={"title": "t"}, headers=headers)).json()
            body = {"session_id": session["id"], "role": "user", "content": "a\u0000b"}
            r = await c.post("/api/chat-history/messages", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["message"]


async def test_nul_in_search_and_login_is_422(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        r = await c.get("/api/chat-history/search?query=a%00b", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 422 and r.json()["message"], r.text
        r = await c.post("/api/auth/login", json={"email": "a\u0000@example.com", "password": "whatever-1"})
        assert r.status_code == 422 and r.json()["message"], r.text
