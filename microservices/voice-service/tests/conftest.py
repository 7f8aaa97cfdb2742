"""Fixtures for voice-service tests: real engines (Piper, espeak-ng, faster-whisper with
Whisper base from its PyPI packages), audio made here with Piper and FFmpeg (PyAV), a
throwaway PostgreSQL database, and the app with internal-auth headers."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import pytest_asyncio

from harvis_testkit import create_database, drop_database
from voice_service.audio import wav_bytes
from voice_service.engines import Engines
from voice_service.settings import Settings

SENTENCE = "The quick brown fox jumps over the lazy dog near the old red barn."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())  # whatever the punctuation


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length (the issue's measure: ≤ 10%)."""
    ref, hyp = words(reference), words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(len(ref), 1)


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"voice_audio_dir": str(tmp / "audio"), "database_url": "", "voice_job_poll_s": 0.1}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voice")


@pytest.fixture(scope="session")
def engines(session_tmp: Path) -> Engines:
    """One set of engines for the session: each model loads once."""
    return Engines(make_settings(session_tmp))


@pytest.fixture(scope="session")
def speech_wav(engines: Engines) -> bytes:
    speech = engines.tts["piper"].synthesize(SENTENCE, None)
    return wav_bytes(speech.pcm16, speech.sample_rate)


def transcode(wav: bytes, container: str, codec: str, rate: int | None = None) -> bytes:
    """Re-encode a WAV with FFmpeg (PyAV): webm/opus, ogg/opus, mp3, m4a/aac."""
    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as src, av.open(out, "w", format=container) as dst:
        in_stream = src.streams.audio[0]
        rate = rate or (48000 if codec == "libopus" else in_stream.rate)
        stream = dst.add_stream(codec, rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.format.name if stream.format else "s16", layout="mono", rate=rate)
        for frame in src.decode(in_stream):
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    dst.mux(packet)
        for f in resampler.resample(None):
            for packet in stream.encode(f):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()


def tone_wav(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes(), rate)


# ---------------------------------------------------------------- PostgreSQL


@pytest_asyncio.fixture
async def database_url() -> AsyncIterator[str]:
    name, dsn = await create_database("voice_test")
    try:
        yield dsn
    finally:
        await drop_database(name)


@pytest.fixture
def audio_root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "audio"
