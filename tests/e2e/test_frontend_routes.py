"""The web front end's own server routes, end to end through nginx :9000.

The unchanged Harvis front end posts its main chat to `/api/ai-chat`, a route of the front
end's own (Next.js) server, which re-POSTs to `BACKEND_URL/api/chat` with the browser's cookie
and re-encodes the SSE answer as the Vercel AI SDK data stream. nginx must send exactly that
path to the front end, everything else under /api/ to core-api.

The front end is stood in for by tests/fakes/fake_frontend.py (its route's protocol, checked
against a scripted backend in the first half of this file), run where the fleet's nginx expects
the front end. core-api answers from the fake Ollama, so the answers are known.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from conftest import BASE_URL, ROOT, FakeOllamaProcess, Fleet, free_port, http_up, new_user, spawn, stop_all, wait_for

from harvis_testkit import serve_app  # on the path from conftest

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
from fake_frontend import FakeFrontend
from fake_frontend import parse_data_stream as data_stream

Part = tuple[str, Any]


def texts(parts: list[Part]) -> str:
    return "".join(value for code, value in parts if code == "0")


def ai_sdk_body(messages: list[dict[str, Any]], session_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """What the front end's chat page posts (useChat's messages plus its own fields)."""
    return {"messages": messages, "model": "mistral", "sessionId": session_id, "textOnly": True,
            "lowVram": False, "ttsEngine": "piper", **extra}  # fmt: skip


FINISH = [
    ("e", {"finishReason": "stop", "usage": {"promptTokens": 0, "completionTokens": 0}, "isContinued": False}),
    ("d", {"finishReason": "stop", "usage": {"promptTokens": 0, "completionTokens": 0}}),
]


# ---------------------------------------------------------------- the stand-in's protocol (no fleet)


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events)


class ScriptedBackend:
    """core-api's `/api/chat` as the route sees it: a scripted answer, sent in 7-byte pieces (so
    lines and UTF-8 characters are split across reads), and every request it was sent."""

    def __init__(self) -> None:
        self.status = 200
        self.answer = sse({"status": "complete", "final_answer": ""})
        self.requests: list[tuple[dict[str, str], Any]] = []

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.json()))
        if self.status != 200:
            return web.json_response({"detail": "nope", "message": "nope"}, status=self.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(self.answer), 7):
            await response.write(self.answer[i : i + 7])
        await response.write_eof()
        return response


class Bridge:
    def __init__(self, backend: ScriptedBackend, client: httpx.AsyncClient) -> None:
        self.backend, self.client = backend, client

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> tuple[httpx.Response, list[Part]]:
        r = await self.client.post("/api/ai-chat", json=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["x-vercel-ai-data-stream"] == "v1"
        return r, data_stream(r.content)


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    backend = ScriptedBackend()
    app = web.Application()
    app.router.add_post("/api/chat", backend.chat)
    runner, backend_url = await serve_app(app)
    front = FakeFrontend(backend_url)
    front_url = await front.start()
    try:
        async with httpx.AsyncClient(base_url=front_url, timeout=10, trust_env=False) as client:
            yield Bridge(backend, client)
    finally:
        await front.stop()
        await runner.cleanup()


async def test_request_becomes_the_backends_chat_body(bridge: Bridge) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
        {"role": "user", "content": "now this"},
    ]
    headers = {"Cookie": "access_token=abc", "Authorization": "Bearer t", "X-Other": "kept back"}
    await bridge.post({"messages": messages, "sessionId": "too-short"}, headers)
    sent_headers, sent = bridge.backend.requests[-1]
    assert sent == {
        "message": "now this",
        "history": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "answer"}],
        "model": "mistral",
        "text_only": True,
        "low_vram": False,
        "session_id": None,  # shorter than 32 characters: dropped
        "tts_engine": "qwen",
    }
    assert sent_headers["Cookie"] == "access_token=abc" and sent_headers["Authorization"] == "Bearer t"
    assert "X-Other" not in sent_headers

    session_id = str(uuid.uuid4())
    await bridge.post(ai_sdk_body([{"role": "user", "content": "x"}], session_id, model="m", lowVram=True))
    _, sent = bridge.backend.requests[-1]
    assert (sent["session_id"], sent["model"], sent["low_vram"], sent["tts_engine"]) == (session_id, "m", True, "piper")


async def test_sse_becomes_the_ai_sdk_data_stream(bridge: Bridge) -> None:
    sid = str(uuid.uuid4())
    bridge.backend.answer = (
        sse({"status": "starting"})
        + b": heartbeat\n\n"
        + sse(
            {"status": "streaming", "content": "Hé, "},
            {"status": "streaming", "content": "two\r\nlines"},
            {"status": "processing", "detail": "thinking"},
            {
                "status": "complete",
                "final_answer": "Hé, two\nlines",
                "reasoning": "step one\n\nstep two",
                "sources": [],
                "session_id": sid,
                "audio_path": None,
            },
        )
    )
    _, parts = await bridge.post(ai_sdk_body([{"role": "user", "content": "hi"}]))
    assert parts == [
        ("0", "Hé, "),
        ("0", "two\nlines"),
        ("2", [{"type": "status_update", "status": "processing", "detail": "thinking"}]),
        ("2", [{"type": "reasoning", "steps": ["step one", "step two"], "finalAnswer": "Hé, two\nlines"}]),
        ("2", [{"type": "search_results", "results": [], "isAutoResearch": False}]),  # [] is true in JavaScript
        ("2", [{"audioPath": None, "sessionId": sid}]),
        *FINISH,
    ]


async def test_an_answer_that_was_not_streamed_is_sent_whole(bridge: Bridge) -> None:
    bridge.backend.answer = sse(
        {"status": "researching", "type": "search_query"},
        {"status": "complete", "final_answer": "All at once.", "audio_path": "/a.wav"},
    )
    _, parts = await bridge.post(ai_sdk_body([{"role": "user", "content": "hi"}]))
    assert parts == [("0", " "), ("0", "All at once."), ("2", [{"audioPath": "/a.wav"}]), *FINISH]


async def test_errors_are_error_parts(bridge: Bridge) -> None:
    bridge.backend.answer = sse({"status": "streaming", "content": "part"}, {"status": "error", "error": "oom"})
    _, parts = await bridge.post(ai_sdk_body([{"role": "user", "content": "hi"}]))
    # No `complete`: what was streamed is sent again as a whole, then the finish parts.
    assert parts == [("0", "part"), ("3", "oom"), ("0", "part"), *FINISH]

    bridge.backend.status = 401
    _, parts = await bridge.post(ai_sdk_body([{"role": "user", "content": "hi"}]))
    assert parts == [("3", 'Backend error: 401 - {"detail": "nope", "message": "nope"}')]


async def test_bad_requests(bridge: Bridge) -> None:
    r = await bridge.client.post("/api/ai-chat", json={"messages": []})
    assert r.status_code == 400 and r.json() == {"error": "No messages provided"}
    r = await bridge.client.post("/api/ai-chat", content=b"{not json")
    assert r.status_code == 200 and [code for code, _ in data_stream(r.content)] == ["3"]
    assert bridge.backend.requests == []


async def test_unreachable_backend_is_an_error_part_after_three_attempts() -> None:
    front = FakeFrontend(f"http://127.0.0.1:{free_port()}")
    url = await front.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10, trust_env=False) as client:
            start = time.monotonic()
            r = await client.post("/api/ai-chat", json=ai_sdk_body([{"role": "user", "content": "hi"}]))
            took = time.monotonic() - start
    finally:
        await front.stop()
    assert r.status_code == 200
    assert data_stream(r.content) == [("3", "Failed to connect to backend after 3 attempts: TypeError: fetch failed")]
    assert took >= 2  # 1 s between attempts


# ---------------------------------------------------------------- through nginx :9000, the real fleet

FRONTEND_LINE = re.compile(r'set \$harvis_frontend "([^"]+)";')


def nginx_frontend(fleet_proc: Fleet) -> tuple[str, int]:
    """Where the fleet's nginx sends the front end's requests (rendered by nginx/render.py)."""
    conf = (fleet_proc.prep.nginx_conf.parent / "conf.d" / "harvis.conf").read_text()
    found = FRONTEND_LINE.search(conf)
    assert found, "the rendered nginx config has no front-end upstream"
    host, _, port = found.group(1).rpartition(":")
    return host, int(port)


class FakeFrontendProcess:
    """tests/fakes/fake_frontend.py as a process where nginx expects the front end, its backend
    being nginx :9000 (the front end's BACKEND_URL); stoppable for "front end down" checks."""

    def __init__(self, fleet_proc: Fleet) -> None:
        self.fleet_proc = fleet_proc
        self.host, self.port = nginx_frontend(fleet_proc)
        self.url = f"http://{self.host}:{self.port}"
        self.proc: Any = None

    def start(self) -> None:
        with socket.socket() as s:
            taken = s.connect_ex((self.host, self.port)) == 0
        assert not taken, f"something already listens on {self.url}, where the test runs the fake front end"
        args = [str(ROOT / "tests" / "fakes" / "fake_frontend.py"), "--host", self.host, "--port", str(self.port),
                "--backend", BASE_URL]  # fmt: skip
        self.proc = spawn(self.fleet_proc, "fake-frontend", args)
        assert wait_for(lambda: http_up(self.url + "/_fake/health"), 15), "the fake front end did not start"

    def stop(self) -> None:
        if self.proc is not None:
            stop_all(self.proc)
            self.proc = None


@pytest.fixture(scope="module")
def fake_llm(fleet_proc: Fleet) -> Iterator[FakeOllamaProcess]:
    """core-api restarted against the fake Ollama (answers `Echo: <message>`), restored afterwards."""
    with FakeOllamaProcess(fleet_proc, "fake-ollama-frontend") as fake:
        try:
            fleet_proc.restart("core-api", {"LLM_PROVIDER": "ollama", "OLLAMA_URL": fake.url,
                                            "DEFAULT_MODEL": "fake-llama:latest", "CHAT_MAX_TOKENS": "0"})  # fmt: skip
            yield fake
        finally:
            fleet_proc.restart("core-api")


@pytest.fixture(scope="module")
def frontend(fleet_proc: Fleet) -> Iterator[FakeFrontendProcess]:
    fake = FakeFrontendProcess(fleet_proc)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def web_chat(browser: httpx.Client, messages: list[dict[str, Any]], session_id: str | None = None) -> list[Part]:
    with browser.stream("POST", "/api/ai-chat", json=ai_sdk_body(messages, session_id), timeout=120) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["x-vercel-ai-data-stream"] == "v1" and r.headers["x-request-id"]
        parts = data_stream(r.read())
    assert [code for code, _ in parts if code == "3"] == [], parts
    assert parts[-2:] == FINISH
    return parts


def session_of(parts: list[Part]) -> str:
    ids = [item["sessionId"] for code, value in parts if code == "2" for item in value if "sessionId" in item]
    assert len(ids) == 1, parts
    assert str(uuid.UUID(ids[0])) == ids[0]
    return ids[0]


def test_web_chat_through_nginx_with_the_signup_cookie_only(
    fake_llm: FakeOllamaProcess, frontend: FakeFrontendProcess
) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=30) as browser:
        new_user(browser)  # signup sets the cookie, which this client then sends like a browser
        assert browser.cookies.get("access_token") and "authorization" not in browser.headers

        first = [{"role": "user", "content": "hello from the web"}]
        parts = web_chat(browser, first)
        assert texts(parts) == "Echo: hello from the web"
        sid = session_of(parts)

        sessions = browser.get("/api/chat-history/sessions").json()
        assert sessions[0]["id"] == sid and sessions[0]["message_count"] == 2
        saved = browser.get(f"/api/chat-history/sessions/{sid}").json()["messages"]
        assert [(m["role"], m["content"]) for m in saved] == [
            ("user", "hello from the web"),
            ("assistant", "Echo: hello from the web"),
        ]

        # The next turn: the whole conversation so far, and the session id the page kept.
        second = [*first, {"role": "assistant", "content": texts(parts)}, {"role": "user", "content": "and again"}]
        parts = web_chat(browser, second, sid)
        assert texts(parts) == "Echo: and again" and session_of(parts) == sid
        model_saw = [(m["role"], m["content"]) for m in fake_llm.stats()["last_request"]["messages"]]
        assert ("user", "hello from the web") in model_saw and model_saw[-1] == ("user", "and again")
        saved = browser.get(f"/api/chat-history/sessions/{sid}").json()["messages"]
        assert [m["content"] for m in saved][2:] == ["and again", "Echo: and again"]


@pytest.mark.parametrize("path", ["/api/ai-chat/x", "/api/ai-chatx"])
def test_only_the_exact_path_goes_to_the_front_end(
    client: httpx.Client, frontend: FakeFrontendProcess, path: str
) -> None:
    user = new_user(client)
    r = client.post(path, json=ai_sdk_body([{"role": "user", "content": "hi"}]), headers=user.bearer)
    # core-api's JSON 404 (the fake front end's own 404 would be aiohttp's plain text)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["detail"] and r.json()["message"]


def test_web_chat_without_the_front_end_is_a_json_502(client: httpx.Client, frontend: FakeFrontendProcess) -> None:
    frontend.stop()
    try:
        start = time.monotonic()
        r = client.post("/api/ai-chat", json=ai_sdk_body([{"role": "user", "content": "hi"}]),
                        headers={"X-Request-ID": "rid-no-frontend"})  # fmt: skip
        took = time.monotonic() - start
    finally:
        frontend.start()
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"detail", "message"} and r.json()["message"]
    assert r.headers["x-request-id"] == "rid-no-frontend"
    assert took < 5
