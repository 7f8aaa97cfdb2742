"""The HTTP API on the real app (real engines, real PostgreSQL), called like the gateway
calls it: with an X-Internal-Auth header."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SENTENCE, make_settings, tone_wav, transcode, word_error_rate
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit, create_database_sync, drop_database_sync
from voice_service.app import create_app

AUD = "voice-service"


@pytest.fixture(scope="module")
def kit() -> InternalAuthKit:
    return InternalAuthKit()


@pytest.fixture(scope="module")
def client(kit: InternalAuthKit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    name, dsn = create_database_sync("voice_routes")
    tmp = tmp_path_factory.mktemp("routes")
    settings = make_settings(
        tmp,
        database_url=dsn,
        internal_auth_public_key=kit.public_key,
        voice_max_upload_bytes=400_000,
        voice_max_audio_s=30.0,
        # Nothing listens here: mic-chat's LLM and history calls fail fast and visibly.
        ollama_url="http://127.0.0.1:9",
        core_api_url="http://127.0.0.1:9",
    )
    try:
        with TestClient(create_app(settings)) as c:
            yield c
    finally:
        drop_database_sync(name)


def h(kit: InternalAuthKit, user_id: int = 1) -> dict[str, str]:
    return kit.headers(AUD, user_id=user_id)


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def test_tts_wav_and_json_and_owner_only_audio(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.post("/api/tts", json={"text": "Hello from Harvis."}, headers=h(kit))
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.headers["x-tts-engine"] == "piper" and wav_seconds(r.content) > 0.5

    r = client.post("/api/tts?as=json", json={"text": "Saved for later.", "engine": "espeak"}, headers=h(kit))
    assert r.status_code == 200, r.text
    path = r.json()["audio_path"]
    assert path.startswith("/api/audio/") and r.json()["engine"] == "espeak"
    got = client.get(path, headers=h(kit))
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav" and wav_seconds(got.content) > 0.5
    assert client.get(path, headers=h(kit, user_id=2)).status_code == 404
    for bad in ("..%2F..%2Fetc%2Fpasswd", "....wav", "%2e%2e", "x" * 32 + ".wav"):
        assert client.get("/api/audio/" + bad, headers=h(kit)).status_code == 404


def test_tts_streaming(client: TestClient, kit: InternalAuthKit) -> None:
    with client.stream(
        "POST", "/api/tts?stream=true", json={"text": "One sentence. Two sentences."}, headers=h(kit)
    ) as r:
        assert r.status_code == 200
        body = b"".join(r.iter_bytes())
    assert body[:4] == b"RIFF" and len(body) > 44 + 22050  # header + over half a second


def test_tts_bad_input(client: TestClient, kit: InternalAuthKit) -> None:
    cases = [
        ({"text": "hi", "engine": "festival"}, 422, "Unknown text-to-speech engine"),
        ({"text": "hi", "engine": "chatterbox"}, 503, "GPU image"),
        ({"text": "   "}, 422, "empty"),
        ({"text": "x" * 5001}, 422, "5000"),
        ({"text": "hi", "format": "mp3"}, 422, ""),
        ({"text": "hi", "voice": "nobody"}, 422, "voice"),
    ]
    for body, status, words in cases:
        r = client.post("/api/tts", json=body, headers=h(kit))
        assert r.status_code == status, (body, r.text)
        assert r.json()["message"] and words in r.json()["message"]


def test_stt_formats(client: TestClient, kit: InternalAuthKit, speech_wav: bytes) -> None:
    webm = transcode(speech_wav, "webm", "libopus")
    r = client.post("/api/stt", files={"file": ("clip.webm", webm, "audio/webm")}, headers=h(kit))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"text", "language", "duration", "segments"}
    assert word_error_rate(SENTENCE, body["text"]) <= 0.1, body["text"]
    assert body["language"] == "en" and body["segments"][0]["end"] > 0
    ogg = transcode(speech_wav, "ogg", "libopus")
    r = client.post("/api/stt", files={"file": ("a.ogg", ogg)}, data={"language": "en"}, headers=h(kit))
    assert r.status_code == 200 and "fox" in r.json()["text"].lower()


def test_stt_hostile_input(client: TestClient, kit: InternalAuthKit, speech_wav: bytes) -> None:
    webm = transcode(speech_wav, "webm", "libopus")
    cases = [
        (b"", 422),
        (b"GIF89a" + b"\x00" * 3000, 422),
        (webm[:40], 422),
        (b"\x00" * 500_000, 413),  # over the 400 kB limit set above
    ]
    for data, status in cases:
        r = client.post("/api/stt", files={"file": ("x.webm", data, "audio/webm")}, headers=h(kit))
        assert r.status_code == status, (len(data), r.text)
        assert r.json()["message"]
    r = client.post("/api/stt", files={"file": ("x.wav", tone_wav(0.5))}, data={"language": "english!"}, headers=h(kit))
    assert r.status_code == 422
    r = client.post("/api/stt", files={"file": ("x.wav", tone_wav(0.5))}, data={"engine": "vosk"}, headers=h(kit))
    assert r.status_code == 422 and "Unknown speech-to-text engine" in r.json()["message"]
    assert client.post("/api/stt", headers=h(kit)).status_code == 422  # no file


def test_stt_duration_limit(kit: InternalAuthKit, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, internal_auth_public_key=kit.public_key, voice_max_audio_s=2.0)
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/stt", files={"file": ("x.wav", tone_wav(3.0))}, headers=h(kit))
    assert r.status_code == 413 and "2 s" in r.json()["message"]


def test_tts_job_round_trip(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.post("/api/jobs/tts", json={"text": "A job well done.", "tts_engine": "espeak"}, headers=h(kit))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=h(kit)).json()
        if job["state"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert job["state"] == "completed", job
    assert job["id"] == job_id and job["name"] == "tts"
    audio = client.get(job["data"]["audio_path"], headers=h(kit))
    assert audio.status_code == 200 and wav_seconds(audio.content) > 0.5
    assert client.get(f"/api/jobs/{job_id}", headers=h(kit, user_id=9)).status_code == 404
    assert client.get("/api/jobs/not-a-job", headers=h(kit)).status_code == 404
    r = client.post("/api/jobs/tts", json={"text": "x", "tts_engine": "nope"}, headers=h(kit))
    assert r.status_code == 422


def test_mic_chat_errors_are_plain_json(client: TestClient, kit: InternalAuthKit, speech_wav: bytes) -> None:
    r = client.post("/api/mic-chat", files={"file": ("x.webm", b"junk" * 100)}, data={"model": "m"}, headers=h(kit))
    assert r.status_code == 422
    assert r.json()["status"] == "error" and r.json()["error"] and r.json()["message"]
    r = client.post("/api/mic-chat", files={"file": ("x.wav", tone_wav(1.0))}, headers=h(kit))
    assert r.status_code == 422 and "No speech" in r.json()["error"]  # a tone is not speech
    # Speech is understood, but the LLM backend is down: a 503 that says so.
    r = client.post("/api/mic-chat", files={"file": ("s.wav", speech_wav)}, data={"model": "m"}, headers=h(kit))
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "error" and "not reachable" in r.json()["error"]


def test_routes_need_internal_auth(client: TestClient) -> None:
    assert client.post("/api/tts", json={"text": "hi"}).status_code == 401
    assert client.get("/api/audio/" + "0" * 32 + ".wav").status_code == 401


def test_ready_reports_engines(client: TestClient) -> None:
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["database"]["ok"] and "faster-whisper" in checks["engines"]["detail"]
    assert "chatterbox (Chatterbox is not installed" in checks["engines"]["detail"]
