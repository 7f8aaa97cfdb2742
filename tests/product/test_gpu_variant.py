"""voice-service's GPU variant (`make up-gpu`, `scripts/images.py build voice --variant gpu`),
checked the way CI can without a GPU or the ~4 GB of CUDA wheels: its builder stage's
dependency set — exactly what the Dockerfile hands pip — resolves from PyPI for the image's
Python, with the versions the GPU code needs. pip reads the wheels' metadata only (PEP 658),
nothing is installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VOICE = ROOT / "microservices" / "voice-service"
# The GPU branch of the Dockerfile's builder stage drops these pins of requirements.txt (the
# GPU additions pin their own numpy; chatterbox brings its tokenizers).
DROPPED = ("numpy", "tokenizers")


def test_the_dockerfile_still_installs_the_gpu_variant_this_way() -> None:
    text = (VOICE / "Dockerfile").read_text()
    assert "sed -E '/^(numpy|tokenizers)==/d' /src/requirements.txt > /src/requirements-base.txt" in text
    assert "harvis-pip -r /src/requirements-base.txt -r /src/requirements-gpu.txt" in text


def test_the_gpu_variant_resolves_without_a_gpu(tmp_path: Path) -> None:
    base = [
        line
        for line in (VOICE / "requirements.txt").read_text().splitlines()
        if not re.match(rf"^({'|'.join(DROPPED)})==", line)
    ]
    (tmp_path / "requirements-base.txt").write_text("\n".join(base) + "\n")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-r",
            str(tmp_path / "requirements-base.txt"),
            "-r",
            str(VOICE / "requirements-gpu.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    installed = {
        i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]
    }
    # The GPU engines and what they run on, next to the CPU variant's engines.
    for name in ("chatterbox-tts", "torch", "torchaudio", "faster-whisper", "piper-tts", "tiktoken", "numba"):
        assert name in installed, (name, sorted(installed))
    assert installed["numpy"].startswith("1."), installed["numpy"]  # chatterbox-tts needs numpy < 2
    assert any(name.startswith("nvidia-") for name in installed), "torch without its CUDA libraries"
