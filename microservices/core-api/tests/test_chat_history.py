"""/api/chat-history/… and /api/artifacts/: every route, users isolated (404), ordering,
pagination, search, stats."""

from __future__ import annotations

import uuid
from datetime import datetime

from chat_support import ChatServer, bearer, chat_events, is_uuid


async def test_session_crud_and_messages(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    h = bearer(token)
    async with chat_server.client() as c:
        r = await c.post("/api/chat-history/sessions", json={"title": "Plans", "model_used": "fake-llama"}, headers=h)
        assert r.status_code == 200
        session = r.json()
        assert is_uuid(session["id"]) and session["title"] == "Plans" and session["message_count"] == 0
        assert set(session) == {
            "id", "user_id", "title", "created_at", "updated_at", "last_message_at",
            "message_count", "model_used", "is_active",
        }  # fmt: skip
        datetime.fromisoformat(session["created_at"])
        sid = session["id"]

        for i in range(5):
            r = await c.post(
                "/api/chat-history/messages",
                json={"session_id": sid, "role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}",
                      "input_type": "voice", "metadata": {"n": i}, "reasoning": "r" if i % 2 else None},
                headers=h,
            )  # fmt: skip
            assert r.status_code == 200, r.text
        assert r.json()["metadata"] == {"n": 4} and r.json()["input_type"] == "voice"

        page = (await c.get(f"/api/chat-history/sessions/{sid}?limit=2&offset=0", headers=h)).json()
        assert [m["content"] for m in page["messages"]] == ["m0", "m1"]
        assert page["total_count"] == 5 and page["has_more"] is True and page["session"]["message_count"] == 5
        assert set(page["messages"][0]) == {
            "id", "session_id", "user_id", "role", "content", "reasoning", "model_used",
            "input_type", "metadata", "created_at",
        }  # fmt: skip
        last = (await c.get(f"/api/chat-history/sessions/{sid}?limit=2&offset=4", headers=h)).json()
        assert [m["content"] for m in last["messages"]] == ["m4"] and last["has_more"] is False

        r = await c.put(f"/api/chat-history/sessions/{sid}/title", json={"title": "Renamed"}, headers=h)
        assert r.status_code == 200 and r.json()["title"] == "Renamed"

        r = await c.delete(f"/api/chat-history/sessions/{sid}/messages", headers=h)
        assert r.status_code == 200 and r.json()["deleted_count"] == 5
        page = (await c.get(f"/api/chat-history/sessions/{sid}", headers=h)).json()
        assert page["messages"] == [] and page["session"]["message_count"] == 0

        r = await c.delete(f"/api/chat-history/sessions/{sid}", headers=h)
        assert r.status_code == 200
        r = await c.get(f"/api/chat-history/sessions/{sid}", headers=h)
        assert r.status_code == 404 and r.json()["message"]


async def test_sessions_most_recent_first_with_pagination(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    h = bearer(token)
    async with chat_server.client() as c:
        ids = [
            (await c.post("/api/chat-history/sessions", json={"title": f"s{i}"}, headers=h)).json()["id"]
            for i in range(3)
        ]
        # a message makes the first one the most recent
        await c.post(
            "/api/chat-history/messages", json={"session_id": ids[0], "role": "user", "content": "x"}, headers=h
        )
        listed = (await c.get("/api/chat-history/sessions", headers=h)).json()
        assert isinstance(listed, list) and [s["id"] for s in listed] == [ids[0], ids[2], ids[1]]
        page = (await c.get("/api/chat-history/sessions?limit=1&offset=1", headers=h)).json()
        assert [s["id"] for s in page] == [ids[2]]
        r = await c.get("/api/chat-history/sessions?limit=0", headers=h)
        assert r.status_code == 422


async def test_other_users_get_404_everywhere(chat_server: ChatServer) -> None:
    _, alice = await chat_server.user()
    _, bob = await chat_server.user()
    async with chat_server.client() as c:
        sid = (await c.post("/api/chat-history/sessions", json={"title": "mine"}, headers=bearer(alice))).json()["id"]
        b = bearer(bob)
        assert (await c.get("/api/chat-history/sessions", headers=b)).json() == []
        for method, path, body in [
            ("GET", f"/api/chat-history/sessions/{sid}", None),
            ("PUT", f"/api/chat-history/sessions/{sid}/title", {"title": "hijack"}),
            ("DELETE", f"/api/chat-history/sessions/{sid}/messages", None),
            ("DELETE", f"/api/chat-history/sessions/{sid}", None),
            ("POST", "/api/chat-history/messages", {"session_id": sid, "role": "user", "content": "x"}),
            ("GET", f"/api/chat-history/sessions/{uuid.uuid4()}", None),
            ("GET", "/api/chat-history/sessions/not-a-uuid", None),
        ]:
            r = await c.request(method, path, json=body, headers=b)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["message"]
        page = (await c.get(f"/api/chat-history/sessions/{sid}", headers=bearer(alice))).json()
        assert page["session"]["title"] == "mine" and page["messages"] == []
        for path in ("/api/chat-history/sessions", f"/api/chat-history/sessions/{sid}", "/api/chat-history/stats"):
            r = await c.get(path)
            assert r.status_code == 401


async def test_search_stats_and_artifacts(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    _, other = await chat_server.user()
    h = bearer(token)
    async with chat_server.client() as c:
        msg = "show me ```python\nprint('hi')\n``` please 100%_done"
        _, events, _ = await chat_events(c, token, {"message": msg, "model": "fake-llama"})
        sid = events[-1]["session_id"]
        await chat_events(c, token, {"message": "unrelated words", "model": "fake-llama"})

        found = (await c.get("/api/chat-history/search", params={"query": "print('hi')"}, headers=h)).json()
        assert found["total"] == 2 and {r["session_id"] for r in found["results"]} == {sid}
        assert [x["id"] for x in found["sessions"]] == [sid]  # the title has it too
        by_title = (await c.get("/api/chat-history/search", params={"query": "unrelated"}, headers=h)).json()
        assert by_title["total"] == 2 and len(by_title["sessions"]) == 1
        # LIKE wildcards in the query are literal
        assert (await c.get("/api/chat-history/search", params={"query": "0%_d"}, headers=h)).json()["total"] == 2
        assert (await c.get("/api/chat-history/search", params={"query": "%"}, headers=h)).json()["total"] == 2
        assert (await c.get("/api/chat-history/search", params={"query": "print"}, headers=bearer(other))).json()[
            "total"
        ] == 0
        assert (await c.get("/api/chat-history/search", headers=h)).status_code == 422

        stats = (await c.get("/api/chat-history/stats", headers=h)).json()
        assert stats["total_sessions"] == 2 and stats["total_messages"] == 4
        assert stats["user_messages"] == 2 and stats["assistant_messages"] == 2
        assert stats["models_used"] == {"fake-llama:latest": 2} and stats["last_activity"]

        arts = (await c.get("/api/artifacts/", headers=h)).json()["artifacts"]
        assert len(arts) == 1 and arts[0]["language"] == "python" and arts[0]["content"] == "print('hi')\n"
        assert arts[0]["session_id"] == sid
        assert (await c.get("/api/artifacts/", headers=bearer(other))).json() == {"artifacts": []}
        assert (await c.get("/api/artifacts/")).status_code == 401
