"""Issue 14: per-user quotas on voice work — seconds of audio transcribed
(`VOICE_STT_SECONDS_PER_HOUR`, /api/stt and mic-chat's recording: its decoded length, charged
before Whisper runs), characters spoken (`VOICE_TTS_CHARS_PER_HOUR`, /api/tts in every form,
TTS jobs, mic-chat's spoken answer) and voice-chat turns (`VOICE_MIC_CHAT_TURNS_PER_HOUR`).

A burst of parallel requests for one user lets exactly the quota through, the rest get a JSON
429 + Retry-After, and another user is unaffected. Both backends: in-process, and the real
Redis (keys under a prefix of their own). Real engines (Whisper, Piper), the fake Ollama."""

from __future__ import annotations

import asyncio
import io
import math
import sys
import uuid
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import make_settings

from harvis_testkit import InternalAuthKit, app_client, quota_backend
from voice_service.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fakes"))
from fake_ollama import FakeOllama

AUD = "voice-service"
REDIS_URL = "redis://127.0.0.1:6379/15"


def seconds_of(wav: bytes) -> int:
    """What a recording costs: its length, rounded up to whole seconds."""
    with wave.open(io.BytesIO(wav)) as w:
        return math.ceil(w.getnframes() / w.getframerate())


class Harness:
    def __init__(self, client: httpx.AsyncClient, kit: InternalAuthKit) -> None:
        self.client, self.kit = client, kit

    def h(self, user_id: int) -> dict[str, str]:
        return self.kit.headers(AUD, user_id=user_id)

    async def stt(self, wav: bytes, user_id: int = 1) -> httpx.Response:
        return await self.client.post("/api/stt", files={"file": ("a.wav", wav, "audio/wav")}, headers=self.h(user_id))

    async def tts(self, text: str, user_id: int = 1, query: str = "", **extra: Any) -> httpx.Response:
        return await self.client.post(f"/api/tts{query}", json={"text": text, **extra}, headers=self.h(user_id))

    async def mic_chat(self, wav: bytes, user_id: int = 1, text_only: str = "true") -> httpx.Response:
        return await self.client.post(
            "/api/mic-chat",
            files={"file": ("rec.wav", wav, "audio/wav")},
            data={"model": "fake-llama", "text_only": text_only},
            headers=self.h(user_id),
        )


@pytest.fixture
async def ollama() -> AsyncIterator[str]:
    fake = FakeOllama()
    url = await fake.start()
    try:
        yield url
    finally:
        await fake.stop()


@pytest.fixture
def make_harness(tmp_path: Path, ollama: str) -> Callable[..., Any]:
    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Harness]:
        kit = InternalAuthKit()
        values: dict[str, Any] = {
            "internal_auth_public_key": kit.public_key,
            "llm_provider": "ollama",
            "ollama_url": ollama,
            "default_model": "fake-llama:latest",
            "core_api_url": "http://127.0.0.1:9",  # no history here: mic-chat answers with history_error
            "redis_url": "",
            **overrides,
        }
        app = create_app(make_settings(tmp_path / uuid.uuid4().hex[:8], **values))
        async with app_client(app, "http://127.0.0.1:8002", timeout=120, start_timeout=30) as c:
            yield Harness(c, kit)

    return factory


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    async for settings in quota_backend(request.param, REDIS_URL, "voice_redis_prefix", "voice"):
        yield settings


def assert_quota_refusal(r: httpx.Response, what: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["message"] == body["detail"], body
    assert what in body["message"] and "resets in" in body["message"], body
    assert 3500 < int(r.headers["Retry-After"]) <= 3600


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


# ---------------------------------------------------------------- speech to text


async def test_parallel_stt_holds_the_seconds_quota(
    make_harness: Any, backend: dict[str, str], speech_wav: bytes
) -> None:
    secs = seconds_of(speech_wav)
    async with make_harness(voice_stt_seconds_per_hour=3 * secs, **backend) as h:
        burst = await asyncio.gather(*(h.stt(speech_wav) for _ in range(8)))
        assert statuses(burst) == [200] * 3 + [429] * 5
        assert all("fox" in r.json()["text"].lower() for r in burst if r.status_code == 200)
        for r in burst:
            if r.status_code == 429:
                assert_quota_refusal(r, f"{3 * secs} seconds of audio transcribed per hour")
        # Another user has seconds of their own.
        theirs = await asyncio.gather(*(h.stt(speech_wav, user_id=2) for _ in range(4)))
        assert statuses(theirs) == [200] * 3 + [429]


async def test_unusable_uploads_cost_no_seconds(make_harness: Any, speech_wav: bytes) -> None:
    async with make_harness(voice_stt_seconds_per_hour=seconds_of(speech_wav)) as h:
        for bad in (b"", b"GIF89a" + b"\x00" * 3000, speech_wav[:40]):
            assert (await h.stt(bad)).status_code == 422
        r = await h.client.post(
            "/api/stt", files={"file": ("a.wav", speech_wav)}, data={"language": "1!"}, headers=h.h(1)
        )
        assert r.status_code == 422
        assert (await h.stt(speech_wav)).status_code == 200
        assert_quota_refusal(await h.stt(speech_wav), "seconds of audio transcribed")


# ---------------------------------------------------------------- text to speech


async def test_parallel_tts_holds_the_character_quota(make_harness: Any, backend: dict[str, str]) -> None:
    text = "Hello there."  # 12 characters
    async with make_harness(voice_tts_chars_per_hour=36, **backend) as h:
        burst = await asyncio.gather(*(h.tts(text) for _ in range(8)))
        assert statuses(burst) == [200] * 3 + [429] * 5
        assert all(r.content[:4] == b"RIFF" for r in burst if r.status_code == 200)
        for r in burst:
            if r.status_code == 429:
                assert_quota_refusal(r, "36 characters of speech per hour")
        # Streaming and saved speech count too: refused before any audio.
        assert_quota_refusal(await h.tts(text, query="?stream=true"), "characters of speech")
        assert_quota_refusal(await h.tts(text, query="?as=json"), "characters of speech")
        # Another user is unaffected.
        theirs = await asyncio.gather(
            h.tts(text, user_id=2), h.tts(text, user_id=2, query="?stream=true"), h.tts(text, user_id=2)
        )
        assert statuses(list(theirs)) == [200, 200, 200]
        assert_quota_refusal(await h.tts("x", user_id=2), "characters of speech")


async def test_bad_tts_requests_cost_no_characters(make_harness: Any) -> None:
    async with make_harness(voice_tts_chars_per_hour=10) as h:
        for body in ({"text": "   "}, {"text": "hi", "engine": "festival"}, {"text": "hi", "voice": "nobody"}):
            assert (await h.tts(**body)).status_code == 422, body
        r = await h.tts("hi", query="?stream=true", voice="nobody")
        assert r.status_code == 422
        assert (await h.tts("0123456789")).status_code == 200
        assert_quota_refusal(await h.tts("again"), "10 characters of speech per hour")
        # More than the whole quota never fits: said plainly.
        whole = await h.tts("x" * 11, user_id=2)
        assert whole.status_code == 429 and "needs 11 characters of speech" in whole.json()["message"]


async def test_tts_jobs_take_from_the_character_quota(make_harness: Any, database_url: str) -> None:
    async with make_harness(voice_tts_chars_per_hour=20, database_url=database_url) as h:
        r = await h.client.post("/api/jobs/tts", json={"text": "Twelve chars"}, headers=h.h(1))
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        refused = await h.client.post("/api/jobs/tts", json={"text": "Twelve chars"}, headers=h.h(1))
        assert_quota_refusal(refused, "20 characters of speech per hour")
        bad = await h.client.post("/api/jobs/tts", json={"text": "x", "voice_id": "nobody"}, headers=h.h(1))
        assert bad.status_code == 422
        assert (await h.client.post("/api/jobs/tts", json={"text": "x" * 8}, headers=h.h(1))).status_code == 200


# ---------------------------------------------------------------- mic-chat


async def test_parallel_mic_chats_hold_the_turn_quota(
    make_harness: Any, backend: dict[str, str], speech_wav: bytes
) -> None:
    secs = seconds_of(speech_wav)
    quotas = {"voice_mic_chat_turns_per_hour": 2, "voice_stt_seconds_per_hour": 3 * secs}
    async with make_harness(**quotas, **backend) as h:
        burst = await asyncio.gather(*(h.mic_chat(speech_wav) for _ in range(5)))
        assert statuses(burst) == [200, 200, 429, 429, 429]
        for r in burst:
            if r.status_code == 200:
                assert r.json()["status"] == "complete" and "fox" in r.json()["transcription"].lower()
            else:
                assert_quota_refusal(r, "2 voice chat turns per hour")
                assert r.json()["status"] == "error" and r.json()["error"] == r.json()["message"]
        # The refused turns took no seconds either: two recordings' worth were used, one is left.
        assert (await h.stt(speech_wav)).status_code == 200
        assert_quota_refusal(await h.stt(speech_wav), "seconds of audio transcribed")
        # A turn left but no seconds: refused all the same.
        theirs = await h.mic_chat(speech_wav, user_id=2)
        assert theirs.status_code == 200
        await asyncio.gather(*(h.stt(speech_wav, user_id=2) for _ in range(2)))
        assert_quota_refusal(await h.mic_chat(speech_wav, user_id=2), "seconds of audio transcribed")
        assert_quota_refusal(await h.stt(speech_wav, user_id=2), "seconds of audio transcribed")


async def test_mic_chat_answers_in_text_when_its_speech_is_over_the_quota(make_harness: Any, speech_wav: bytes) -> None:
    async with make_harness(voice_tts_chars_per_hour=5) as h:
        r = await h.mic_chat(speech_wav, text_only="false")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["final_answer"] and "audio_path" not in body
        assert "5 characters of speech per hour" in body["tts_error"], body
        assert (await h.tts("hello")).status_code == 200  # the refused answer took nothing
