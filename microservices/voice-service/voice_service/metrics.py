"""voice-service's Prometheus metrics: audio seconds heard and spoken, and how fast (the
real-time factor: processing time over audio length; below 1 is faster than real time)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

AUDIO_SECONDS = Counter(
    "harvis_voice_audio_seconds", "Seconds of audio transcribed (stt) or spoken (tts).", ("kind", "engine")
)
REAL_TIME_FACTOR = Histogram(
    "harvis_voice_real_time_factor",
    "Processing time over audio length, per transcription or synthesis.",
    ("kind", "engine"),
    buckets=(0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0),
)


def observe_audio(kind: str, engine: str, audio_s: float, processing_s: float) -> None:
    AUDIO_SECONDS.labels(kind, engine).inc(audio_s)
    if audio_s > 0:
        REAL_TIME_FACTOR.labels(kind, engine).observe(processing_s / audio_s)
