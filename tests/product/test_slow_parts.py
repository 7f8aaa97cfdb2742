"""The slow optional parts of `make dev` (the demo model, n8n): their programs listen where
the fleet calls them whatever the process manager sets, and answer a clear 503 with their
progress while they are still being built."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import preparing
import pytest
from conftest import ROOT, llm_server, port_free

from harvis_common.llm import LLMUnavailable, OpenAIClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_model_listens_on_its_port_whatever_PORT_says(tmp_path: Path) -> None:
    """honcho set PORT=5800 and llama-cpp-python's server took it over its --port: chat then
    called 8090 and nothing answered."""
    port, decoy = free_port(), free_port()
    env = {**os.environ, "PORT": str(decoy), "HOST": "0.0.0.0", "N_CTX": "64"}
    log = tmp_path / "llm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "llm_server.py"), "run", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        models = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                if r.status_code == 200:
                    models = r.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert models is not None, f"nothing served on --port {port}:\n{log.read_text()[-3000:]}"
        assert [m["id"] for m in models["data"]] == [llm_server.MODEL_ALIAS]
        assert port_free(decoy), "the server listened on $PORT as well"
    finally:
        proc.terminate()
        proc.wait(20)


def test_progress_from_build_output() -> None:
    p = preparing.Progress("The demo model is still being built", expected_s=600)
    assert "%" in p.message() and "minutes left" in p.message()  # before any report: the expected duration
    p.feed("  [ 62%] Building CXX object vendor/llama.cpp/src/CMakeFiles/llama.dir/llama.cpp.o\n")
    assert p.message().startswith("The demo model is still being built: 62%, ")
    p.feed("[35/140] Building C object ggml/src/CMakeFiles/ggml-base.dir/ggml.c.o")
    assert p.message().startswith("The demo model is still being built: 25%, ")
    p.feed("some other line [99%] that is not progress")
    assert ": 25%, " in p.message()
    p.fail("The demo model could not be built (exit 1)")
    assert p.message() == "The demo model could not be built (exit 1)"


def test_the_port_answers_503_with_progress_until_ready_then_frees_it() -> None:
    port = free_port()
    progress = preparing.Progress("n8n is still being installed", expected_s=480)
    progress.update(0.4)
    with preparing.serving(progress, port):
        for method in ("GET", "POST"):
            r = httpx.request(method, f"http://127.0.0.1:{port}/api/v1/workflows", json={}, timeout=5)
            assert r.status_code == 503 and r.headers["retry-after"]
            body = r.json()
            assert body["message"].startswith("n8n is still being installed: 40%, about ")
            assert body["error"]["message"] == body["message"] == body["detail"]
    assert port_free(port), "the real server must be able to take the port"


def test_chat_backend_reports_the_build_progress() -> None:
    """What core-api's model client makes of the placeholder: 'unavailable' with the progress."""
    port = free_port()
    progress = preparing.Progress("The demo model is still being built", expected_s=600)
    progress.update(0.62)

    async def ask() -> None:
        client = OpenAIClient(f"http://127.0.0.1:{port}/v1")
        try:
            await client.list_models()
        finally:
            await client.close()

    with preparing.serving(progress, port), pytest.raises(LLMUnavailable) as err:
        asyncio.run(ask())
    assert "The demo model is still being built: 62%, about " in str(err.value)
    assert err.value.status == 503
