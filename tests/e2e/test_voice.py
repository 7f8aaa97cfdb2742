"""voice-service end to end, through nginx :9000 like the front end: TTS → STT round trip
with real models (Piper, Whisper base via faster-whisper), mic-chat with a real webm/opus
clip against the fleet's real model backend, saved to the chat history, owner-only audio,
the durable TTS job queue across a restart, hostile uploads, and mic-chat's research mode
(core-api's token exchange, the real research-service over the research fixture web and the
fake SearXNG, the fake Ollama as the model so the answer shows what it was given)."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest
from conftest import RESEARCH_WEB, FakeOllamaProcess, Fleet, User, http_up, new_user, wait_for

SENTENCES = [
    "The weather today is sunny with a light breeze from the west.",
    "Please remind me to buy milk and fresh bread after work.",
    "My favorite book is about a sailor who crosses the ocean alone.",  # Whisper spells US English,
]
UPLOAD_LIMIT = 3_000_000
# Short spoken answers keep the demo model (and Piper after it) quick.
VOICE_ENV = {"VOICE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "CHAT_MAX_TOKENS": "64"}


@pytest.fixture(scope="module")
def voice(fleet_proc: Fleet) -> Iterator[Fleet]:
    """voice-service with a small upload limit, restored afterwards."""
    fleet_proc.restart("voice-service", VOICE_ENV)
    base = fleet_proc.prep.llm_env.get("OPENAI_API_BASE")
    if base:
        wait_for(lambda: http_up(base + "/models", 2), 120, 1)
    try:
        yield fleet_proc
    finally:
        fleet_proc.restart("voice-service")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    ref, hyp = words(reference), words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)], len(ref)


def tts(client: httpx.Client, user: User, text: str, **extra: str) -> bytes:
    r = client.post("/api/tts", json={"text": text, **extra}, headers=user.bearer)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"
    return r.content


def to_webm(wav: bytes) -> bytes:
    """What a browser's MediaRecorder sends: Opus in WebM."""
    proc = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "pipe:0", "-c:a", "libopus", "-b:a", "32k", "-f", "webm", "pipe:1"],
        input=wav,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return proc.stdout


def test_tts_then_stt_round_trip(client: httpx.Client, user: User, voice: Fleet) -> None:
    errors = total = 0
    heard = []
    for sentence in SENTENCES:
        wav = tts(client, user, sentence)
        r = client.post("/api/stt", files={"file": ("s.wav", wav, "audio/wav")}, headers=user.bearer, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["language"] == "en" and body["duration"] > 1 and body["segments"]
        e, n = word_errors(sentence, body["text"])
        errors, total = errors + e, total + n
        heard.append(body["text"])
    assert errors / total <= 0.10, f"word error rate {errors / total:.1%}: heard {heard}"


def test_tts_streams_through_the_gateway(client: httpx.Client, user: User, voice: Fleet) -> None:
    text = "This answer is spoken sentence by sentence. The first one arrives before the last is made."
    pieces = []
    with client.stream("POST", "/api/tts?stream=true", json={"text": text}, headers=user.bearer) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        pieces = list(r.iter_raw())
    body = b"".join(pieces)
    assert body[:4] == b"RIFF" and body[36:40] == b"data" and len(body) > 44 + 2 * 22050
    # The stream decodes like a file: Whisper hears both sentences.
    r = client.post("/api/stt", files={"file": ("s.wav", body, "audio/wav")}, headers=user.bearer, timeout=60)
    assert r.status_code == 200 and {"sentence", "arrives"} <= set(words(r.json()["text"])), r.text


def test_stt_of_a_browser_recording_and_espeak(client: httpx.Client, user: User, voice: Fleet) -> None:
    webm = to_webm(tts(client, user, "Turn off the kitchen lights at ten o'clock.", engine="espeak"))
    r = client.post("/api/stt", files={"file": ("rec.webm", webm, "audio/webm")}, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    assert {"kitchen", "lights"} <= set(words(r.json()["text"])), r.json()["text"]


def test_mic_chat_end_to_end(client: httpx.Client, user: User, voice: Fleet) -> None:
    webm = to_webm(tts(client, user, "What is the capital city of France?"))
    r = client.post(
        "/api/mic-chat",
        files={"file": ("recording.webm", webm, "audio/webm")},
        data={"model": "mistral", "research_mode": "false", "text_only": "false", "low_vram": "false"},
        headers=user.bearer,
        timeout=180,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "complete"
    assert {"france", "capital"} <= set(words(body["transcription"])), body["transcription"]
    assert body["final_answer"].strip()
    assert len(body["session_id"]) >= 32 and body["message_id"]
    assert [m["role"] for m in body["history"]][-2:] == ["user", "assistant"]
    assert body["history"][-1]["content"] == body["final_answer"]

    # The answer's audio: playable by its owner only.
    audio = client.get(body["audio_path"], headers=user.bearer)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav" and audio.content[:4] == b"RIFF"
    stranger = new_user(client)
    assert client.get(body["audio_path"], headers=stranger.bearer).status_code == 404

    # Saved in the same chat history as /api/chat, marked as voice.
    sessions = client.get("/api/chat-history/sessions", headers=user.bearer).json()
    assert body["session_id"] in [s["id"] for s in sessions]
    msgs = client.get(f"/api/chat-history/sessions/{body['session_id']}", headers=user.bearer).json()["messages"]
    assert [(m["role"], m["input_type"]) for m in msgs] == [("user", "voice"), ("assistant", "voice")]
    assert msgs[1]["content"] == body["final_answer"]

    # A second turn in the same session, text only, in research mode while no search engine
    # answers (this module's fixture web is not up yet): the model answers, with a notice.
    r = client.post(
        "/api/mic-chat",
        files={"file": ("r2.webm", to_webm(tts(client, user, "Thank you very much.")), "audio/webm")},
        data={"model": "mistral", "session_id": body["session_id"], "text_only": "true", "research_mode": "true"},
        headers=user.bearer,
        timeout=180,
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["session_id"] == body["session_id"] and "audio_path" not in second
    assert second["notice"].startswith("The web search found no usable sources") and second["sources"] == []
    assert len(second["history"]) == 4
    msgs = client.get(f"/api/chat-history/sessions/{body['session_id']}", headers=user.bearer).json()["messages"]
    assert len(msgs) == 4
    # Another user cannot write into this session: theirs becomes a new one.
    r = client.post(
        "/api/mic-chat",
        files={"file": ("r3.webm", webm, "audio/webm")},
        data={"model": "mistral", "session_id": body["session_id"], "text_only": "true"},
        headers=stranger.bearer,
        timeout=180,
    )
    assert r.status_code == 200 and r.json()["session_id"] != body["session_id"]


def test_tts_jobs_survive_a_restart(client: httpx.Client, user: User, voice: Fleet) -> None:
    r = client.post("/api/jobs/tts", json={"text": "This job was queued before a restart."}, headers=user.bearer)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    first = r.json()["job_id"]
    voice.stop("voice-service")  # queued or mid-way: the row stays in PostgreSQL
    voice.restart("voice-service", VOICE_ENV)
    after = {"text": "And this one after it.", "tts_engine": "espeak"}
    r = client.post("/api/jobs/tts", json=after, headers=user.bearer)
    second = r.json()["job_id"]
    for job_id in (first, second):
        job: dict = {}

        def done(job_id: str = job_id) -> bool:
            nonlocal job
            job = client.get(f"/api/jobs/{job_id}", headers=user.bearer).json()
            return job.get("state") in ("completed", "failed")

        assert wait_for(done, 60, 0.2), job
        assert job["state"] == "completed" and job["id"] == job_id and job["name"] == "tts", job
        audio = client.get(job["data"]["audio_path"], headers=user.bearer)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    other = new_user(client)
    assert client.get(f"/api/jobs/{first}", headers=other.bearer).status_code == 404
    assert client.get(f"/api/jobs/{uuid.uuid4()}", headers=user.bearer).status_code == 404
    r = client.post("/api/jobs/tts", json={"text": "x", "tts_engine": "festival"}, headers=user.bearer)
    assert r.status_code == 422 and r.json()["message"]


def test_hostile_inputs(client: httpx.Client, user: User, voice: Fleet) -> None:
    webm = to_webm(tts(client, user, "Short clip."))
    for name, data, ctype, status in [
        ("empty.webm", b"", "audio/webm", 422),
        ("fake.webm", b"<html>not audio</html>" * 50, "audio/webm", 422),
        ("image.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000, "image/png", 422),
        ("cut.webm", webm[:64], "audio/webm", 422),
        ("huge.webm", b"\x1a\x45\xdf\xa3" + b"\x00" * (UPLOAD_LIMIT + 10), "audio/webm", 413),
    ]:
        for path in ("/api/stt", "/api/mic-chat"):
            r = client.post(path, files={"file": (name, data, ctype)}, headers=user.bearer, timeout=60)
            assert r.status_code == status, (path, name, r.status_code, r.text[:300])
            body = r.json()
            assert body["message"], body
            if path == "/api/mic-chat":
                assert body["status"] == "error" and body["error"]
    # nginx resolves encoded dot segments itself (/api/audio/..%2F..%2Fetc → /etc, which is the
    # front end's, not the API's): whatever answers, it is never a file from the audio store.
    for bad in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fsettings.py", ".."):
        r = client.get("/api/audio/" + bad, headers=user.bearer)
        assert r.status_code != 200 and b"root:" not in r.content, (bad, r.status_code)
    for bad in ("0" * 32 + ".wav", "x.wav.png", "..%5c..%5cwin.ini", "%252e%252e%252fx.wav"):
        r = client.get("/api/audio/" + bad, headers=user.bearer)
        assert r.status_code in (400, 404), (bad, r.status_code)
    r = client.post("/api/tts", json={"text": "hi", "engine": "festival"}, headers=user.bearer)
    assert r.status_code == 422 and "Unknown text-to-speech engine" in r.json()["message"]
    r = client.post("/api/tts", json={"text": "hi", "engine": "chatterbox"}, headers=user.bearer)
    assert r.status_code == 503 and "Chatterbox" in r.json()["message"]
    with httpx.Client(base_url=str(client.base_url), timeout=30) as anonymous:  # no cookie, no token
        assert anonymous.post("/api/tts", json={"text": "hi"}).status_code == 401


def test_ready_lists_engines(voice: Fleet) -> None:
    r = httpx.get("http://127.0.0.1:8002/ready", timeout=10)
    assert r.status_code == 200, r.text
    detail = {c["name"]: c["detail"] for c in r.json()["checks"]}["engines"]
    assert "faster-whisper" in detail and "piper" in detail and "espeak" in detail


# ---------------------------------------------------------------- research mode


@pytest.fixture(scope="module")
def voice_fake_llm(voice: Fleet, research_web: None) -> Iterator[Fleet]:
    """voice-service against the fake Ollama (it echoes its prompt), restored afterwards."""
    with FakeOllamaProcess(voice, "fake-ollama-voice") as fake:
        env = {**VOICE_ENV, "LLM_PROVIDER": "ollama", "OLLAMA_URL": fake.url, "DEFAULT_MODEL": "fake-llama:latest",
               "CHAT_MAX_TOKENS": "0"}  # fmt: skip
        try:
            voice.restart("voice-service", env)
            yield voice
        finally:
            voice.restart("voice-service", VOICE_ENV)


def mic_chat(client: httpx.Client, user: User, webm: bytes, **data: str) -> dict:
    r = client.post("/api/mic-chat", files={"file": ("rec.webm", webm, "audio/webm")},
                    data={"model": "fake-llama", **data}, headers=user.bearer, timeout=180)  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


def test_mic_chat_research_mode_answers_from_fetched_sources(
    client: httpx.Client, user: User, voice_fake_llm: Fleet
) -> None:
    webm = to_webm(tts(client, user, "When did Apollo 11 land on the Moon?"))
    # Text only: the fake's answer is the whole prompt, minutes of speech (the unit tests speak one).
    body = mic_chat(client, user, webm, research_mode="true", text_only="true")
    assert body["status"] == "complete" and "notice" not in body, body.get("notice")
    assert {"apollo", "moon"} <= set(words(body["transcription"])), body["transcription"]
    sources = body["sources"]
    assert sources and body["sources_found"] == len(sources)
    assert sources[0]["url"].startswith(RESEARCH_WEB) and "apollo-11" in sources[0]["url"]
    assert [s["index"] for s in sources] == list(range(1, len(sources) + 1))
    # The model got the pages' main text under their numbers (the fake echoes it): [n] points
    # at a returned source that was really fetched, and no boilerplate came along.
    answer = body["final_answer"]
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    assert cited and cited <= {s["index"] for s in sources}
    assert all(s["fetched"] for s in sources if s["index"] in cited)
    assert "20 July 1969" in answer and "Accept all cookies" not in answer
    # Saved as a voice exchange with its sources.
    msgs = client.get(f"/api/chat-history/sessions/{body['session_id']}", headers=user.bearer).json()["messages"]
    assert [(m["role"], m["input_type"]) for m in msgs] == [("user", "voice"), ("assistant", "voice")]
    assert msgs[1]["content"] == answer and msgs[1]["metadata"]["research"] is True
    assert [s["url"] for s in msgs[1]["metadata"]["sources"]] == [s["url"] for s in sources]


def test_mic_chat_research_mode_without_research_service(
    client: httpx.Client, user: User, voice_fake_llm: Fleet
) -> None:
    webm = to_webm(tts(client, user, "When did Apollo 11 land on the Moon?"))
    voice_fake_llm.stop("research-service")
    try:
        body = mic_chat(client, user, webm, research_mode="true", text_only="true")
    finally:
        voice_fake_llm.restart("research-service")
    assert body["status"] == "complete" and body["sources"] == []
    assert body["notice"] == (
        "Web research failed (research-service is not reachable): this answer comes from the model alone."
    )
    assert body["final_answer"] == "Echo: " + body["transcription"]  # the question alone, no sources
