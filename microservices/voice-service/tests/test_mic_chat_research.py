"""mic-chat's research mode on the real app (real Whisper and Piper), with core-api's
internal API (token exchange, history) and research-service's `/api/research/sources`
as recording stubs here — the real ones are exercised end to end through nginx — and the
fake Ollama (tests/fakes, Ollama's wire format) as the model, which echoes its prompt:
what the model was given shows in the answer."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import make_settings
from fastapi.testclient import TestClient

from harvis_common.internal_auth import HEADER, InternalAuthError, InternalVerifier
from harvis_testkit import BackgroundLoop, InternalAuthKit, serve_app
from voice_service.app import create_app
from voice_service.chat import RESEARCH_PROMPT, SYSTEM_PROMPT, speakable

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fakes"))
from fake_ollama import FakeOllama

AUD = "voice-service"
SOURCES = [
    {"index": 1, "title": "Foxes and bridges", "url": "https://example.org/fox", "domain": "example.org",
     "snippet": "s", "fetched": True},
    {"index": 2, "title": "Old stone bridges", "url": "https://example.net/bridge", "domain": "example.net",
     "snippet": "s", "fetched": True},
]  # fmt: skip
QUOTA = "quota reached: 100 research turns per hour for your account; resets in 1 min (at 2026-01-01 10:00:00 UTC)"
CONTEXT = (
    "[1] Foxes and bridges (https://example.org/fox)\nRed foxes can jump two metres high.\n\n"
    "[2] Old stone bridges (https://example.net/bridge)\nThe old bridge was built in 1642."
)


class Stubs:
    """core-api's /internal/token + /internal/history/exchange and research-service's
    /api/research/sources, checking tokens as the real ones do."""

    def __init__(self, kit: InternalAuthKit) -> None:
        self.kit = kit
        self.exchange_mode = "ok"  # ok | refuse
        self.research_mode = "ok"  # ok | empty | error | slow | quota
        self.token_requests: list[tuple[str, dict[str, Any]]] = []
        self.research_requests: list[tuple[int, dict[str, Any]]] = []
        self.saved: list[dict[str, Any]] = []
        self.research_verifier = InternalVerifier(kit.public_key, "research-service")
        self.voice_verifier = InternalVerifier(kit.public_key, AUD)

    async def token(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.token_requests.append((request.headers.get(HEADER, ""), body))
        if self.exchange_mode == "refuse":
            return web.json_response({"detail": "voice-service may not act at research-service"}, status=403)
        who = self.voice_verifier.verify(request.headers.get(HEADER))
        token = self.kit.headers(body["audience"], user_id=who.user_id, request_id=who.request_id)[HEADER]
        return web.json_response({"token": token, "audience": body["audience"], "expires_in": 60})

    async def exchange(self, request: web.Request) -> web.Response:
        self.voice_verifier.verify(request.headers.get(HEADER))
        body = await request.json()
        self.saved.append(body)
        return web.json_response({"session_id": "s" * 36, "message_id": len(self.saved)})

    async def sources(self, request: web.Request) -> web.Response:
        try:
            who = self.research_verifier.verify(request.headers.get(HEADER))
        except InternalAuthError:
            return web.json_response({"detail": "Missing or invalid internal authentication"}, status=401)
        body = await request.json()
        self.research_requests.append((who.user_id, body))
        if self.research_mode == "error":
            return web.json_response({"detail": "boom"}, status=500)
        if self.research_mode == "quota":
            return web.json_response({"detail": QUOTA, "message": QUOTA}, status=429, headers={"Retry-After": "60"})
        if self.research_mode == "slow":
            await asyncio.sleep(3)
        if self.research_mode == "empty":
            return web.json_response({"query": body["query"], "sources": [], "context": "", "errors": ["none"]})
        return web.json_response({"query": body["query"], "sources": SOURCES, "context": CONTEXT, "errors": []})

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/internal/token", self.token)
        app.router.add_post("/internal/history/exchange", self.exchange)
        app.router.add_post("/api/research/sources", self.sources)
        return await serve_app(app)


@pytest.fixture(scope="module")
def kit() -> InternalAuthKit:
    return InternalAuthKit()


@pytest.fixture(scope="module")
def served(
    kit: InternalAuthKit, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Stubs, FakeOllama]]:
    bg = BackgroundLoop()
    stubs, fake = Stubs(kit), FakeOllama()
    runner, url = bg.run(stubs.start())
    ollama_url = bg.run(fake.start())
    settings = make_settings(
        tmp_path_factory.mktemp("research"),
        internal_auth_public_key=kit.public_key,
        llm_provider="ollama",
        ollama_url=ollama_url,
        default_model="fake-llama:latest",
        core_api_url=url,
        research_service_url=url,
        voice_research_timeout_s=1.5,
    )
    try:
        with TestClient(create_app(settings)) as c:
            yield c, stubs, fake
    finally:
        bg.run(runner.cleanup())
        bg.run(fake.stop())
        bg.close()


@pytest.fixture
def stubs(served: tuple[TestClient, Stubs, FakeOllama]) -> Stubs:
    _, s, _ = served
    s.exchange_mode = s.research_mode = "ok"
    return s


def mic_chat(served: tuple[TestClient, Stubs, FakeOllama], wav: bytes, kit: InternalAuthKit, **data: str) -> dict:
    client = served[0]
    r = client.post(
        "/api/mic-chat",
        files={"file": ("rec.wav", wav, "audio/wav")},
        data={"model": "fake-llama", **data},
        headers=kit.headers(AUD, user_id=42, request_id="rid-42"),
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_research_mode_answers_from_the_sources(served, stubs: Stubs, kit: InternalAuthKit, speech_wav: bytes) -> None:
    body = mic_chat(served, speech_wav, kit, research_mode="true", text_only="false")
    assert body["status"] == "complete" and "notice" not in body
    assert body["sources"] == SOURCES and body["sources_found"] == 2
    # The model was asked with the research prompt and the numbered excerpts.
    sent = served[2].stats["last_request"]["messages"]
    assert sent[0]["content"] == RESEARCH_PROMPT
    assert sent[-1]["content"].startswith(f"Question: {body['transcription']}") and CONTEXT in sent[-1]["content"]
    assert "[1]" in body["final_answer"] and "built in 1642" in body["final_answer"]
    assert body["audio_path"].startswith("/api/audio/")

    # The token exchange got this request's own token back; research-service got one for it,
    # for the same user, asking the transcription.
    forwarded, asked = stubs.token_requests[-1]
    assert asked == {"audience": "research-service"} and InternalVerifier(kit.public_key, AUD).verify(forwarded)
    user_id, query = stubs.research_requests[-1]
    assert user_id == 42 and query == {"query": body["transcription"], "max_sources": 4}
    assert "fox" in body["transcription"].lower()

    # Saved with the sources, as research chat saves them.
    meta = stubs.saved[-1]["assistant_message"]["metadata"]
    assert meta["research"] is True and meta["research_mode"] is True
    assert meta["sources"] == [{"index": s["index"], "title": s["title"], "url": s["url"]} for s in SOURCES]
    assert stubs.saved[-1]["user_message"]["input_type"] == "voice"


@pytest.mark.parametrize(
    ("exchange", "research", "notice"),
    [
        ("refuse", "ok", "Web research failed (core-api gave no token for research-service)"),
        ("ok", "error", "Web research failed (research-service answered 500)"),
        ("ok", "slow", "Web research failed (research-service took too long)"),
        ("ok", "empty", "The web search found no usable sources"),
        ("ok", "quota", f"Web research failed ({QUOTA})"),  # the user's research turns are used up
    ],
)
def test_research_failures_fall_back_to_the_model_with_a_notice(
    served, stubs: Stubs, kit: InternalAuthKit, speech_wav: bytes, exchange: str, research: str, notice: str
) -> None:
    stubs.exchange_mode, stubs.research_mode = exchange, research
    body = mic_chat(served, speech_wav, kit, research_mode="true", text_only="true")
    assert body["status"] == "complete" and body["notice"].startswith(notice), body.get("notice")
    assert "model alone" in body["notice"]
    assert body["sources"] == [] and body["sources_found"] == 0
    sent = served[2].stats["last_request"]["messages"]
    assert sent[0]["content"] == SYSTEM_PROMPT and sent[-1]["content"] == body["transcription"]
    assert stubs.saved[-1]["assistant_message"]["metadata"]["research"] is False


def test_without_research_mode_no_research_is_asked(
    served, stubs: Stubs, kit: InternalAuthKit, speech_wav: bytes
) -> None:
    before = (len(stubs.token_requests), len(stubs.research_requests))
    body = mic_chat(served, speech_wav, kit, research_mode="false", text_only="true")
    assert "sources" not in body and "notice" not in body
    assert (len(stubs.token_requests), len(stubs.research_requests)) == before
    assert served[2].stats["last_request"]["messages"][0]["content"] == SYSTEM_PROMPT


def test_citations_are_not_read_aloud() -> None:
    assert speakable("Foxes jump high [1]. The bridge dates from 1642 [2][3], or so [1] [2].") == (
        "Foxes jump high. The bridge dates from 1642, or so."
    )
    assert speakable("Lists start at index [0].") == "Lists start at index [0]."  # sources count from 1
