"""The optional openai-whisper engine, for real: its loading and transcription code runs on
a tiny randomly initialised checkpoint this test builds (no weights can be downloaded here).

It needs torch, which the default image does not have: the test builds (once, cached under
$HARVIS_CACHE/venvs/) a venv from requirements-openai-whisper.txt plus openai-whisper
installed with --no-deps (~2 min the first time, ~1.2 GB).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1]
COMMON = SERVICE.parent / "common"
REQS = SERVICE / "requirements-openai-whisper.txt"
OPENAI_WHISPER = "openai-whisper==20250625"
CACHE = Path(os.environ.get("HARVIS_CACHE", Path.home() / ".cache" / "harvis"))

SCRIPT = r"""
import dataclasses, json, sys, time
import numpy as np, torch, whisper
from whisper.model import ModelDimensions, Whisper

path = sys.argv[1]
torch.manual_seed(0)
dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
                       n_vocab=51865, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1)
model = Whisper(dims)
torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)

from voice_service.engines import EngineError, Engines
from voice_service.settings import Settings

out = {}
engines = Engines(Settings(voice_openai_whisper_model=path, voice_stt_engine="openai-whisper"))
engine = engines.stt_engine(None)
out["engine"] = engine.name
out["status"] = engines.status()["stt"]["openai-whisper"]
t = np.arange(16000 * 2) / 16000
samples = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
start = time.perf_counter()
tr = engine.transcribe(samples, "en")
out["seconds"] = time.perf_counter() - start
out["text_type"] = type(tr.text).__name__
out["duration"] = tr.duration
out["language"] = tr.language
out["loaded"] = engine.slot.loaded
missing = Engines(Settings(voice_openai_whisper_model="no-such-model")).stt["openai-whisper"]
try:
    missing.load()
except EngineError as exc:
    out["missing"] = [exc.status, exc.message]
print("RESULT " + json.dumps(out))
"""


def _venv() -> Path:
    digest = hashlib.sha256(REQS.read_bytes() + (SERVICE / "requirements.txt").read_bytes()).hexdigest()[:12]
    venv = CACHE / "venvs" / f"voice-openai-whisper-py3.11-{digest}"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "voice-openai-whisper.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        if (venv / ".complete").exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(REQS)], check=True, cwd=SERVICE)
        subprocess.run([*pip, "--no-deps", OPENAI_WHISPER], check=True)
        (venv / ".complete").write_text("ok\n")
    return python


def test_openai_whisper_loads_and_transcribes_a_tiny_checkpoint(tmp_path: Path) -> None:
    python = _venv()
    env = {**os.environ, "PYTHONPATH": f"{SERVICE}{os.pathsep}{COMMON}", "VOICE_AUDIO_DIR": str(tmp_path)}
    proc = subprocess.run(
        [str(python), "-c", SCRIPT, str(tmp_path / "tiny.pt")], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["engine"] == "openai-whisper" and out["status"] == "available"
    assert out["loaded"] and out["text_type"] == "str" and out["language"] == "en"
    assert abs(out["duration"] - 2.0) < 0.01
    assert out["missing"][0] == 503 and "no-such-model" in out["missing"][1]
