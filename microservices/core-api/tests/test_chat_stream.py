"""POST /api/chat and /api/vision-chat against the fake Ollama: strict SSE framing,
persistence, heartbeats, model fallback, errors and client disconnects."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
from chat_support import (
    ChatServer,
    bearer,
    chat_events,
    free_port,
    is_uuid,
    parse_sse,
)


def terminal(events: list[dict]) -> list[dict]:
    return [e for e in events if e["status"] in ("complete", "error")]


async def test_chat_streams_and_saves_the_exchange(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        r, events, _ = await chat_events(c, token, {"message": "hello there", "history": [], "model": "fake-llama"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        assert events[0]["status"] == "starting"
        streamed = [e for e in events if e["status"] == "streaming"]
        assert len(streamed) > 2 and "".join(e["content"] for e in streamed) == "Echo: hello there"
        assert terminal(events) == [events[-1]]
        done = events[-1]
        assert done["status"] == "complete" and done["final_answer"] == "Echo: hello there"
        assert is_uuid(done["session_id"]) and isinstance(done["message_id"], int)
        assert done["history"][-2:] == [
            {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "Echo: hello there"},
        ]
        assert "reasoning" not in done

        sessions = (await c.get("/api/chat-history/sessions", headers=bearer(token))).json()
        assert sessions[0]["id"] == done["session_id"] and sessions[0]["message_count"] == 2
        assert sessions[0]["title"] == "hello there" and sessions[0]["model_used"] == "fake-llama:latest"
        detail = (await c.get(f"/api/chat-history/sessions/{done['session_id']}", headers=bearer(token))).json()
        assert [(m["role"], m["content"]) for m in detail["messages"]] == [
            ("user", "hello there"),
            ("assistant", "Echo: hello there"),
        ]
        assert detail["messages"][1]["id"] == done["message_id"]
        assert detail["messages"][1]["metadata"]["completion_tokens"] > 0

        # The same session continues; the model gets the earlier turns from the request's history.
        body = {"message": "again", "history": done["history"], "model": "fake-llama", "session_id": done["session_id"]}
        _, events2, _ = await chat_events(c, token, body)
        assert events2[-1]["session_id"] == done["session_id"]
        sent = chat_server.fake.stats["last_request"]["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        sessions = (await c.get("/api/chat-history/sessions", headers=bearer(token))).json()
        assert sessions[0]["message_count"] == 4


async def test_history_is_loaded_from_the_session_when_not_sent(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        _, events, _ = await chat_events(c, token, {"message": "first", "model": "fake-llama"})
        sid = events[-1]["session_id"]
        await chat_events(c, token, {"message": "second", "model": "fake-llama", "session_id": sid})
    sent = chat_server.fake.stats["last_request"]["messages"]
    assert [m["content"] for m in sent[1:]] == ["first", "Echo: first", "second"]


async def test_odd_history_entries_are_tolerated(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    history = [
        {"role": "user", "content": None},
        {"role": "tool", "content": "x"},
        {"role": "assistant", "content": "a"},
    ]
    async with chat_server.client() as c:
        _, events, _ = await chat_events(c, token, {"message": "q", "history": history, "model": "fake-llama"})
    assert events[-1]["status"] == "complete"
    sent = chat_server.fake.stats["last_request"]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [("user", ""), ("assistant", "a"), ("user", "q")]


async def test_cookie_alone_authenticates_and_no_token_is_401(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client(cookies={"access_token": token}) as c:
        _, events, _ = await chat_events(c, None, {"message": "via cookie", "model": "fake-llama"})
        assert events[-1]["status"] == "complete"
    async with chat_server.client() as c:
        r = await c.post("/api/chat", json={"message": "hi"})
        assert r.status_code == 401 and r.json()["message"] and r.headers["www-authenticate"] == "Bearer"


async def test_bad_input_is_422_json(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        for body in ({"message": ""}, {"message": "   "}, {"history": []}, {"message": "x", "temperature": 9}):
            r = await c.post("/api/chat", json=body, headers=bearer(token))
            assert r.status_code == 422 and r.json()["message"], body
        r = await c.post(
            "/api/chat", content=b"not json", headers={**bearer(token), "content-type": "application/json"}
        )
        assert r.status_code == 422


async def test_unknown_model_falls_back_to_the_default(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        _, events, _ = await chat_events(c, token, {"message": "hi", "model": "mistral"})
        assert events[-1]["status"] == "complete" and events[-1]["model"] == "fake-llama:latest"
        _, events, _ = await chat_events(c, token, {"message": "hi"})
        assert events[-1]["model"] == "fake-llama:latest"


async def test_think_goes_to_reasoning(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        _, events, _ = await chat_events(c, token, {"message": "why [[think]]", "model": "fake-llama"})
    done = events[-1]
    assert done["final_answer"] == "Echo: why" and done["reasoning"] == "Let me think."
    assert "think" not in "".join(e.get("content", "") for e in events if e["status"] == "streaming")


async def test_headers_and_starting_come_at_once_then_heartbeats(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        before = len((await c.get("/api/chat-history/sessions", headers=bearer(token))).json())
        start = time.perf_counter()
        body = {"message": "[[delay:1.2]] slow start", "model": "fake-llama"}
        async with c.stream("POST", "/api/chat", json=body, headers=bearer(token)) as r:
            headers_at = time.perf_counter() - start
            chunks = r.aiter_bytes()
            first = await chunks.__anext__()
            first_at = time.perf_counter() - start
            # While the model is still silent (heartbeats), the session and the user's message exist.
            second = await chunks.__anext__()
            assert second == b": heartbeat\n\n"
            listed = (await c.get("/api/chat-history/sessions", headers=bearer(token))).json()
            rest = second + b"".join([chunk async for chunk in chunks])
    assert headers_at < 0.8 and first_at < 0.8, (headers_at, first_at)
    assert first.startswith(b'data: {"status":"starting"')
    assert len(listed) == before + 1
    events, heartbeats = parse_sse(first + rest)
    assert heartbeats >= 2 and events[-1]["status"] == "complete"


async def test_backend_error_mid_stream_ends_with_one_error(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        _, events, _ = await chat_events(c, token, {"message": "[[error]] a b c d e f", "model": "fake-llama"})
        assert terminal(events) == [events[-1]] and events[-1]["status"] == "error"
        assert "out of memory" in events[-1]["error"] and is_uuid(events[-1]["session_id"])
        await asyncio.sleep(0.2)  # the partial answer is saved in the background
        detail = (await c.get(f"/api/chat-history/sessions/{events[-1]['session_id']}", headers=bearer(token))).json()
        roles = [m["role"] for m in detail["messages"]]
        assert roles == ["user", "assistant"] and detail["messages"][1]["metadata"]["error"]


async def test_backend_down_is_an_error_event(make_chat_server) -> None:
    server = await make_chat_server(ollama_url=f"http://127.0.0.1:{free_port()}")
    _, token = await server.user()
    async with server.client() as c:
        r, events, _ = await chat_events(c, token, {"message": "anyone?", "model": "x"})
        assert r.status_code == 200 and events[0]["status"] == "starting"
        assert events[-1]["status"] == "error" and "not reachable" in events[-1]["error"]
        assert terminal(events) == [events[-1]]
        # The user's message is kept (history stays consistent: the turn happened, unanswered).
        sessions = (await c.get("/api/chat-history/sessions", headers=bearer(token))).json()
        assert sessions[0]["id"] == events[-1]["session_id"] and sessions[0]["message_count"] == 1


async def test_disconnect_cancels_generation_and_keeps_the_partial_answer(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        async with c.stream(
            "POST", "/api/chat", json={"message": "[[slow]]", "model": "fake-llama"}, headers=bearer(token)
        ) as r:
            seen = 0
            async for line in r.aiter_lines():
                if line.startswith('data: {"status":"streaming"'):
                    seen += 1
                    if seen == 3:
                        break
        # the client is gone: the backend must see its request cut off
        for _ in range(100):
            if chat_server.fake.stats["cancelled"]:
                break
            await asyncio.sleep(0.05)
        assert chat_server.fake.stats["cancelled"] == 1 and chat_server.fake.stats["completed"] == 0
        for _ in range(100):
            sessions = (await c.get("/api/chat-history/sessions", headers=bearer(token))).json()
            if sessions and sessions[0]["message_count"] == 2:
                break
            await asyncio.sleep(0.05)
        detail = (await c.get(f"/api/chat-history/sessions/{sessions[0]['id']}", headers=bearer(token))).json()
    user_msg, partial = detail["messages"]
    assert user_msg["content"] == "[[slow]]"
    assert partial["metadata"]["interrupted"] is True and partial["content"].startswith("slow0 slow1 slow2")
    assert len(partial["content"].split()) < 60


async def test_someone_elses_session_id_starts_a_new_session(chat_server: ChatServer) -> None:
    _, alice = await chat_server.user()
    _, bob = await chat_server.user()
    async with chat_server.client() as c:
        _, events, _ = await chat_events(c, alice, {"message": "secret", "model": "fake-llama"})
        sid = events[-1]["session_id"]
        _, events, _ = await chat_events(c, bob, {"message": "intrude", "session_id": sid, "model": "fake-llama"})
        assert events[-1]["session_id"] != sid
        detail = (await c.get(f"/api/chat-history/sessions/{sid}", headers=bearer(alice))).json()
        assert [m["content"] for m in detail["messages"]] == ["secret", "Echo: secret"]


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()


async def test_vision_chat(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        body = {"message": "what is it", "images": [PNG, "data:image/png;base64," + PNG], "history": [], "model": "x"}
        _, events, _ = await chat_events(c, token, body, path="/api/vision-chat")
        assert events[0]["status"] == "starting" and events[-1]["status"] == "complete"
        assert events[-1]["model"] == "fake-vision:latest"
        assert events[-1]["final_answer"].startswith("I see 2 image(s).")
        assert chat_server.fake.stats["last_request"]["messages"][-1]["images"] == [PNG, PNG]
        detail = (await c.get(f"/api/chat-history/sessions/{events[-1]['session_id']}", headers=bearer(token))).json()
        assert detail["messages"][0]["input_type"] == "screen" and detail["messages"][0]["metadata"] == {"images": 2}
        for images in ([], ["!!not base64!!"]):
            r = await c.post("/api/vision-chat", json={"message": "x", "images": images}, headers=bearer(token))
            assert r.status_code == 422 and r.json()["message"]


async def test_sse_ends_cleanly_for_plain_http_clients(chat_server: ChatServer) -> None:
    """A non-streaming client gets the whole body: framing holds end to end."""
    _, token = await chat_server.user()
    async with httpx.AsyncClient(base_url=chat_server.url, trust_env=False, timeout=30) as c:
        r = await c.post("/api/chat", json={"message": "[[long:50]]", "model": "fake-llama"}, headers=bearer(token))
    events, _ = parse_sse(r.content)
    assert len([e for e in events if e["status"] == "streaming"]) == 50 and events[-1]["status"] == "complete"
