"""The README's other path to a model: "`make dev` uses Ollama when one answers at
`OLLAMA_URL` (default `http://127.0.0.1:11434`)". Ollama can't be installed here, so its
fake (tests/fakes/fake_ollama.py, Ollama's real wire format) listens on that default
address; `make dev` is started with nothing set and must find it, start no demo model,
and stream the chat from it."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import httpx
from conftest import PORTS, ROOT, fleet, llm_server, port_free, session_pids, start_make_dev
from make_dev_run import describe

from harvis_testkit import parse_sse

OLLAMA_DEFAULT_PORT = 11434


def test_make_dev_uses_ollama_at_its_default_address(free_ports: None, client: httpx.Client) -> None:
    assert port_free(OLLAMA_DEFAULT_PORT), "something listens on Ollama's port already"
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "fake_ollama.py"), "--port", str(OLLAMA_DEFAULT_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run = None
    try:
        deadline = time.monotonic() + 15
        while port_free(OLLAMA_DEFAULT_PORT) and time.monotonic() < deadline:
            time.sleep(0.2)
        run = start_make_dev()
        run.wait_healthy(300)
        assert f"chat uses Ollama at http://127.0.0.1:{OLLAMA_DEFAULT_PORT}" in run.log()
        assert port_free(llm_server.DEFAULT_PORT), "no demo model when Ollama answers"

        suffix = uuid.uuid4().hex[:8]
        r = client.post(
            "/api/auth/signup",
            json={"username": f"o{suffix}", "email": f"o{suffix}@example.com", "password": f"Ollama-Path-{suffix}-1"},
        )
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        models = client.get("/api/ollama-models", headers=headers)
        assert models.status_code == 200 and models.json(), models.text
        body = {"message": "hello from a newcomer", "history": [], "model": "mistral"}
        with client.stream("POST", "/api/chat", json=body, headers=headers, timeout=120) as resp:
            assert resp.status_code == 200
            events, _ = parse_sse(resp.read())
        assert events[-1]["status"] == "complete", events[-3:]
        assert events[-1]["final_answer"] == "Echo: hello from a newcomer"
        run.ctrl_c()
        left = session_pids(run.sid)
        assert not left, f"still running after Ctrl-C: {describe(left)}"
        assert all(port_free(p) for p in PORTS)
    finally:
        if run is not None and run.proc.poll() is None:
            run.kill_everything()
            fleet.stop_embedded_postgres(fleet.STATE / "pgdata")
        fake.terminate()
        fake.wait(10)
