"""Chat end to end through nginx :9000.

First against the real demo model (Gemma 3 270M behind llama-cpp-python's
OpenAI-compatible server, started by the fleet): structure and streaming only,
never wording (it is a base model). Then core-api is restarted against the fake
Ollama (tests/fakes, Ollama's NDJSON wire format) for deterministic framing,
persistence, disconnect and error checks, and restored afterwards.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import BASE_URL, FakeOllamaProcess, Fleet, User, new_user, wait_for

from harvis_testkit import parse_sse  # on the path from conftest


def chat(client: httpx.Client, user: User, body: dict[str, Any], path: str = "/api/chat") -> list[dict[str, Any]]:
    with client.stream("POST", path, json=body, headers=user.bearer, timeout=180) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read()
    return parse_sse(raw)[0]


def is_uuid(value: Any) -> bool:
    try:
        return len(str(value)) >= 32 and str(uuid.UUID(str(value))) == str(value)
    except ValueError:
        return False


# ---------------------------------------------------------------- the real demo model


def test_real_model_chat_streams_through_nginx(client: httpx.Client, fleet_proc: Fleet) -> None:
    if not fleet_proc.prep.llm_command:
        pytest.fail("the e2e fleet has no demo model server (see the fleet's output for why)")
    user = new_user(client)
    start = time.perf_counter()
    body = {"message": "The capital of France is", "history": [], "model": "mistral", "temperature": 0}
    with client.stream("POST", "/api/chat", json=body, headers=user.bearer, timeout=180) as r:
        headers_at = time.perf_counter() - start
        assert r.status_code == 200  # (nginx consumes core-api's X-Accel-Buffering: no)
        chunks, arrival = [], []
        for chunk in r.iter_raw():
            chunks.append(chunk)
            arrival.append(time.perf_counter() - start)
    events, _ = parse_sse(b"".join(chunks))
    assert headers_at < 5
    assert events[0]["status"] == "starting"
    streamed = [e for e in events if e["status"] == "streaming"]
    done = events[-1]
    assert done["status"] == "complete", done
    assert len(streamed) >= 2 and all(isinstance(e["content"], str) for e in streamed)
    assert done["final_answer"] == "".join(e["content"] for e in streamed)
    assert done["model"] == "gemma3-270m"  # "mistral" is unknown: the configured default is used
    assert is_uuid(done["session_id"]) and isinstance(done["message_id"], int)
    assert len(arrival) >= 3 and arrival[-1] - arrival[0] > 0.05  # pieces came over time, not in one lump

    sessions = client.get("/api/chat-history/sessions", headers=user.bearer).json()
    assert sessions[0]["id"] == done["session_id"] and sessions[0]["message_count"] == 2
    detail = client.get(f"/api/chat-history/sessions/{done['session_id']}", headers=user.bearer).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    assert detail["messages"][1]["content"] == done["final_answer"]

    other = new_user(client)
    r = client.get(f"/api/chat-history/sessions/{done['session_id']}", headers=other.bearer)
    assert r.status_code == 404 and r.json()["message"]
    assert client.get("/api/chat-history/sessions", headers=other.bearer).json() == []


def test_real_model_is_listed(client: httpx.Client, user: User) -> None:
    body = client.get("/api/models", headers=user.bearer, timeout=10).json()  # the front end waits 10 s
    assert {"name": "gemma3-270m", "status": "available", "provider": "ollama"}.items() <= body["models"][0].items()
    assert set(body["models"][0]) >= {"name", "displayName", "size", "status", "provider"}
    assert client.get("/api/ollama-models").json() == ["gemma3-270m"]


def test_real_model_chats_with_a_users_own_key(client: httpx.Client) -> None:
    """The demo model is OpenAI-compatible, so a user's `openai` key is used for their chats
    (the demo server accepts any key); keys are never returned, and internal URLs are refused."""
    user = new_user(client)
    secret = "sk-e2e-" + uuid.uuid4().hex
    r = client.post("/api/user/api-keys", json={"provider_name": "openai", "api_key": secret, "is_active": True},
                    headers=user.bearer)  # fmt: skip
    assert r.status_code == 200 and secret not in r.text and r.json()["in_use"] is True
    listed = client.get("/api/user/api-keys", headers=user.bearer)
    assert isinstance(listed.json(), list) and listed.json()[0]["provider_name"] == "openai"
    assert secret not in listed.text
    events = chat(client, user, {"message": "Hello", "history": [], "model": "mistral", "temperature": 0})
    assert events[-1]["status"] == "complete", events[-1]
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8000/v1"):
        r = client.post("/api/user/api-keys", json={"provider_name": "openai", "api_key": secret, "api_url": url},
                        headers=user.bearer)  # fmt: skip
        assert r.status_code == 422 and "api_url" in r.json()["message"]
    r = client.post("/api/user/api-keys", json={"provider_name": "anthropic", "api_key": secret}, headers=user.bearer)
    assert r.status_code == 422 and "anthropic" in r.json()["message"]
    assert client.delete("/api/user/api-keys/openai", headers=user.bearer).status_code == 200
    assert client.get("/api/user/api-keys", headers=user.bearer).json() == []


# ---------------------------------------------------------------- the fake Ollama


@pytest.fixture(scope="module")
def fake_ollama(fleet_proc: Fleet) -> Iterator[str]:
    """The fake Ollama as a process, and core-api restarted to use it (restored afterwards)."""
    with FakeOllamaProcess(fleet_proc) as fake:
        try:
            fleet_proc.restart(
                "core-api",
                {"LLM_PROVIDER": "ollama", "OLLAMA_URL": fake.url, "DEFAULT_MODEL": "fake-llama:latest",
                 "VISION_MODEL": "fake-vision:latest", "SSE_HEARTBEAT_S": "0.3", "CHAT_MAX_TOKENS": "0"},
            )  # fmt: skip
            yield fake.url
        finally:
            fleet_proc.restart("core-api")


def fake_stats(url: str) -> dict[str, Any]:
    return httpx.get(url + "/_fake/stats", timeout=5).json()


def test_chat_framing_and_history(client: httpx.Client, fake_ollama: str) -> None:
    user = new_user(client)
    events = chat(client, user, {"message": "hello e2e", "history": [], "model": "fake-llama"})
    assert events[0]["status"] == "starting"
    assert "".join(e["content"] for e in events if e["status"] == "streaming") == "Echo: hello e2e"
    done = events[-1]
    assert done["final_answer"] == "Echo: hello e2e" and is_uuid(done["session_id"])
    assert done["history"][-1] == {"role": "assistant", "content": "Echo: hello e2e"}

    # continue the session, with the cookie alone (the front end's bridge)
    cookie_client = httpx.Client(base_url=BASE_URL, timeout=30, cookies={"access_token": user.token})
    with cookie_client:
        body = {"message": "second [[think]]", "history": done["history"], "model": "mistral",
                "session_id": done["session_id"]}  # fmt: skip
        with cookie_client.stream("POST", "/api/chat", json=body) as r:
            events2, _ = parse_sse(r.read())
    assert events2[-1]["session_id"] == done["session_id"]
    assert events2[-1]["reasoning"] == "Let me think." and events2[-1]["final_answer"] == "Echo: second"
    assert events2[-1]["model"] == "fake-llama:latest"

    listed = client.get("/api/chat-history/sessions", headers=user.bearer).json()
    assert listed[0]["id"] == done["session_id"] and listed[0]["message_count"] == 4
    stats = client.get("/api/chat-history/stats", headers=user.bearer).json()
    assert stats["total_messages"] == 4 and stats["total_sessions"] == 1
    found = client.get("/api/chat-history/search", params={"query": "hello e2e"}, headers=user.bearer).json()
    assert found["total"] == 2


def test_heartbeats_while_the_model_is_silent(client: httpx.Client, fake_ollama: str) -> None:
    user = new_user(client)
    start = time.perf_counter()
    with client.stream("POST", "/api/chat", json={"message": "[[delay:1.5]] hi"}, headers=user.bearer) as r:
        chunks = r.iter_raw()
        first = next(chunks)
        first_at = time.perf_counter() - start
        raw = first + b"".join(chunks)
    assert first_at < 1.0 and first.startswith(b'data: {"status":"starting"')
    events, heartbeats = parse_sse(raw)
    assert heartbeats >= 2 and events[-1]["status"] == "complete"


def test_disconnect_through_nginx_cancels_and_saves_partial(client: httpx.Client, fake_ollama: str) -> None:
    user = new_user(client)
    before = fake_stats(fake_ollama)["cancelled"]
    with (
        httpx.Client(base_url=BASE_URL, timeout=30) as c,
        c.stream("POST", "/api/chat", json={"message": "[[slow]]"}, headers=user.bearer) as r,
    ):
        seen = 0
        for line in r.iter_lines():
            if line.startswith('data: {"status":"streaming"'):
                seen += 1
                if seen == 3:
                    break
    assert wait_for(lambda: fake_stats(fake_ollama)["cancelled"] == before + 1, 15)

    def saved() -> bool:
        s = client.get("/api/chat-history/sessions", headers=user.bearer).json()
        return bool(s) and s[0]["message_count"] == 2

    assert wait_for(saved, 10)
    sid = client.get("/api/chat-history/sessions", headers=user.bearer).json()[0]["id"]
    messages = client.get(f"/api/chat-history/sessions/{sid}", headers=user.bearer).json()["messages"]
    assert messages[1]["metadata"]["interrupted"] is True and messages[1]["content"].startswith("slow0")


def test_backend_error_is_one_error_event(client: httpx.Client, user: User, fake_ollama: str) -> None:
    events = chat(client, user, {"message": "[[error]] a b c d e"})
    assert events[-1]["status"] == "error" and "out of memory" in events[-1]["error"]


def test_vision_chat_framing(client: httpx.Client, user: User, fake_ollama: str) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()
    events = chat(client, user, {"message": "what", "images": [png], "history": [], "model": "x"}, "/api/vision-chat")
    assert events[0]["status"] == "starting" and events[-1]["status"] == "complete"
    assert events[-1]["final_answer"].startswith("I see 1 image(s).") and events[-1]["model"] == "fake-vision:latest"
    r = client.post("/api/vision-chat", json={"message": "x", "images": ["***"]}, headers=user.bearer)
    assert r.status_code == 422 and r.json()["message"]


def test_models_memory_and_unload_shapes(client: httpx.Client, user: User, admin: User, fake_ollama: str) -> None:
    models = client.get("/api/models", headers=user.bearer).json()["models"]
    assert models[0] == {**models[0], "name": "fake-llama:latest", "size": "4.1GB", "status": "available"}
    chat(client, user, {"message": "load", "model": "fake-llama"})
    cookie = {"access_token": user.token}
    with httpx.Client(base_url=BASE_URL, timeout=30, cookies=cookie) as c:
        mem = c.get("/api/models/memory-pressure").json()
        assert {"pressure_level", "usage_percent", "free_gb", "allocated_gb", "total_gb", "recommendations",
                "auto_cleanup_suggested"} <= set(mem)  # fmt: skip
        assert mem["allocated_gb"] > 3 and mem["total_gb"] > 0
        # "Clear AI RAM" unloads the models of everyone: an administrator's button.
        assert c.post("/api/models/unload", json={"model_type": "all"}).status_code == 403
    with httpx.Client(base_url=BASE_URL, timeout=30, cookies={"access_token": admin.token}) as c:
        r = c.post("/api/models/unload", json={"model_type": "all"})
        assert r.status_code == 200 and "fake-llama:latest" in r.json()["unloaded_models"]
    with httpx.Client(base_url=BASE_URL, timeout=30) as anonymous:
        assert anonymous.get("/api/models/memory-pressure").status_code == 401


def test_api_keys_are_refused_while_chat_runs_on_ollama(client: httpx.Client, user: User, fake_ollama: str) -> None:
    # Ollama uses no keys: storing one would be a secret that does nothing (issue 14).
    secret = "sk-e2e-" + uuid.uuid4().hex
    r = client.post("/api/user/api-keys", json={"provider_name": "openai", "api_key": secret, "is_active": True},
                    headers=user.bearer)  # fmt: skip
    assert r.status_code == 422 and "Ollama" in r.json()["message"] and secret not in r.text
    assert client.get("/api/user/api-keys", headers=user.bearer).json() == []


def test_errors_are_json_with_message(client: httpx.Client, user: User, fake_ollama: str) -> None:
    cases = [
        client.post("/api/chat", json={"message": ""}, headers=user.bearer),  # 422
        httpx.post(f"{BASE_URL}/api/chat", json={"message": "x"}),  # 401 (no token, no cookie)
        client.get(f"/api/chat-history/sessions/{uuid.uuid4()}", headers=user.bearer),  # 404
        client.put("/api/chat-history/sessions/nope/title", json={"title": "x"}, headers=user.bearer),  # 404
    ]
    assert [r.status_code for r in cases] == [422, 401, 404, 404]
    for r in cases:
        assert r.headers["content-type"].startswith("application/json") and r.json()["message"]
    arts = client.get("/api/artifacts/", headers=user.bearer)
    assert arts.status_code == 200 and isinstance(arts.json()["artifacts"], list)


def test_internal_history_is_not_reachable_through_nginx(client: httpx.Client, user: User) -> None:
    r = client.post("/internal/history/exchange", json={"title": "x"}, headers=user.bearer)
    assert r.status_code != 200 and r.status_code >= 400
    assert client.post("/api/internal/history/exchange", json={"title": "x"}, headers=user.bearer).status_code == 404
