"""`make dev` as the README runs it: up with the defaults, every feature answering through
nginx :9000, a crashed program restarted while the rest keep serving, Ctrl-C leaving nothing
behind, and the data still there at the next start.

The tests share one `make dev` run and run in file order (the last one stops it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import features
import httpx
import pytest
from conftest import BASE_URL, PORTS, ROOT, fleet, port_free, session_pids, start_make_dev
from make_dev_run import MakeDevRun, describe

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
from fake_frontend import DEFAULT_PORT as FRONTEND_PORT
from fake_frontend import parse_data_stream

SUPERVISORCTL = Path(sys.executable).parent / "supervisorctl"
# The demo model may still be building on a machine that never built it (about 10 minutes).
MODEL_READY_TIMEOUT_S = 900
N8N_READY_TIMEOUT_S = 900
STATE: dict[str, Any] = {}


def untracked() -> set[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=str(ROOT), capture_output=True, text=True
    ).stdout
    return {line[3:] for line in out.splitlines() if line.startswith("??")}


@pytest.fixture(scope="module")
def dev(free_ports: None) -> Iterator[MakeDevRun]:
    STATE["untracked_before"] = untracked()
    run = start_make_dev()
    try:
        run.wait_healthy(600)
        yield run
    finally:
        if run.proc.poll() is None:
            run.kill_everything()
            fleet.stop_embedded_postgres(fleet.STATE / "pgdata")


def bearer() -> dict[str, str]:
    return features.bearer(STATE["user"])


def chat(client: httpx.Client, message: str, session_id: str | None = None) -> list[dict[str, Any]]:
    return features.chat(client, bearer(), message, session_id)


def supervised_pid(name: str) -> int:
    out = subprocess.run(
        [str(SUPERVISORCTL), "-c", str(fleet.STATE / "supervisord.conf"), "pid", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(out)


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def supervisor_log() -> str:
    return (fleet.STATE / "supervisord.log").read_text(errors="replace")


# ---------------------------------------------------------------- up, as a newcomer meets it


def test_up_and_sign_up(dev: MakeDevRun, client: httpx.Client) -> None:
    print(f"make dev healthy after {dev.healthy_after:.0f} s")
    r = client.get("/api/health")
    assert r.status_code == 200, r.text
    STATE["user"] = features.signup(client)
    me = client.get("/api/auth/me", headers=bearer())
    assert me.status_code == 200 and isinstance(me.json()["id"], int)


def test_chat_streams_tokens_from_the_demo_model(dev: MakeDevRun, client: httpx.Client) -> None:
    STATE["session_id"] = features.check_demo_model_chat(client, bearer(), MODEL_READY_TIMEOUT_S)


def test_the_web_front_ends_chat_goes_through(dev: MakeDevRun) -> None:
    """The front end's own chat route, as nginx :9000 routes it under make dev: its server (the
    fake, where the real one listens by default) turns the AI SDK request into /api/chat with
    the browser's cookie."""
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "fake_frontend.py"), "--backend", BASE_URL],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        features.wait_until("the fake front end", lambda: port_free(FRONTEND_PORT) is False, 15, interval=0.2)
        with httpx.Client(base_url=BASE_URL, timeout=120) as browser:
            user = features.signup(browser)  # the browser keeps the cookie signup set; no Bearer
            body = {"messages": [{"role": "user", "content": "Say hello."}], "model": "mistral"}
            with browser.stream("POST", "/api/ai-chat", json=body) as r:
                assert r.status_code == 200, r.read()
                parts = parse_data_stream(r.read())
        assert not [v for code, v in parts if code == "3"], parts
        assert "".join(v for code, v in parts if code == "0").strip(), parts
        sessions = [i["sessionId"] for code, v in parts if code == "2" for i in v if "sessionId" in i]
        assert len(sessions) == 1, parts
        history = httpx.get(
            f"{BASE_URL}/api/chat-history/sessions", headers={"Authorization": f"Bearer {user['token']}"}
        ).json()
        assert sessions[0] in [h["id"] for h in history]
    finally:
        fake.terminate()
        fake.wait(10)


def test_prometheus_scrapes_all_seven(dev: MakeDevRun) -> None:
    """make dev runs a Prometheus over the fleet (deploy/prometheus/prometheus.native.yml)."""
    url = f"http://127.0.0.1:{fleet.PROMETHEUS_PORT}/api/v1/query"

    def all_up() -> Any:
        try:
            r = httpx.get(url, params={"query": "up"}, timeout=5)
        except httpx.HTTPError:
            return None
        series = r.json()["data"]["result"] if r.status_code == 200 else []
        up = {s["metric"]["job"] for s in series if s["value"][1] == "1"}
        return up if len(up) >= 7 else None

    up = features.wait_until("Prometheus seeing the seven services up", all_up, 90, interval=3)
    assert {"core-api", "research-service", "voice-service", "vibe-coding"} <= up, up


def test_model_list(dev: MakeDevRun, client: httpx.Client) -> None:
    r = client.get("/api/ollama-models", headers=bearer())
    assert r.status_code == 200 and "gemma3-270m" in r.json(), r.text


def test_research_answers(dev: MakeDevRun, client: httpx.Client) -> None:
    features.check_research(client, bearer())


def test_voice_round_trip(dev: MakeDevRun, client: httpx.Client) -> None:
    features.check_voice_round_trip(client, bearer())


def test_browser_answers(dev: MakeDevRun, client: httpx.Client, tmp_path: Path) -> None:
    features.check_browser(client, bearer(), tmp_path)


def test_mcp_tools_answer(dev: MakeDevRun, client: httpx.Client) -> None:
    features.check_mcp_files(client, bearer())


def test_code_runs_in_the_sandbox(dev: MakeDevRun, client: httpx.Client) -> None:
    features.check_sandboxed_run(client, bearer())


def test_an_artifact_is_rendered(dev: MakeDevRun, client: httpx.Client) -> None:
    features.check_artifact(client, bearer())


def test_n8n_workflow_runs(dev: MakeDevRun, client: httpx.Client) -> None:
    features.check_n8n_workflow(client, bearer(), N8N_READY_TIMEOUT_S)


def test_a_crashed_service_is_restarted_while_the_rest_keep_serving(dev: MakeDevRun, client: httpx.Client) -> None:
    pid = supervised_pid("research-service")
    os.kill(pid, signal.SIGKILL)
    # While it is down: its prefix answers a JSON 503 at once, everything else is untouched.
    down = client.post("/api/web-search", json={"query": "x"}, headers=bearer(), timeout=1)
    if down.status_code != 200:  # (unless supervisord already brought it back)
        assert down.status_code == 503 and down.json()["message"], down.text
    assert client.get("/api/auth/me", headers=bearer(), timeout=2).status_code == 200
    assert client.get("/api/mcp/tools", headers=bearer(), timeout=5).status_code == 200

    def back() -> bool:
        r = client.post("/api/web-search", json={"query": "x"}, headers=bearer(), timeout=60)
        return r.status_code == 200

    features.wait_until("research-service back", back, 60, interval=1)
    assert supervised_pid("research-service") != pid
    # The restart is in the log the user watches.
    assert "exited: research-service (terminated by SIGKILL; not expected)" in dev.log()
    assert "exited: research-service (terminated by SIGKILL; not expected)" in supervisor_log()


def test_a_crashed_model_server_is_restarted(dev: MakeDevRun, client: httpx.Client) -> None:
    pid = supervised_pid("llm")
    os.kill(pid, signal.SIGKILL)

    def answers() -> list[dict[str, Any]] | None:
        events = chat(client, "Name a colour.")
        if events[-1]["status"] == "error":  # a clear error while it is down, never a hang
            assert events[-1]["error"], events[-1]
            return None
        return events

    events = features.wait_until("the demo model back", answers, 120, interval=1)
    assert events[-1]["status"] == "complete" and any(e["status"] == "streaming" for e in events)
    assert supervised_pid("llm") != pid
    assert "exited: llm (terminated by SIGKILL; not expected)" in dev.log()


def test_a_crashed_n8n_is_restarted(dev: MakeDevRun, client: httpx.Client) -> None:
    wrapper = supervised_pid("n8n")
    node = children_of(wrapper)
    assert node, "n8n runs as the wrapper's child"
    for pid in node:
        os.kill(pid, signal.SIGKILL)
    ran = features.wait_until("n8n back", lambda: features.run_workflow(client, bearer(), "again"), 180, interval=2)
    assert ran["data"] == [{"echo": "again"}], ran
    assert "exited: n8n" in dev.log()


# ---------------------------------------------------------------- Ctrl-C, and the next start


def stop_and_check(run: MakeDevRun) -> None:
    run.ctrl_c()
    assert "[fleet] stopped" in run.log(), run.log()[-2000:]
    left = session_pids(run.sid)
    assert not left, f"still running after Ctrl-C: {describe(left)}"
    busy = [p for p in PORTS if not port_free(p)]
    assert not busy, f"ports still taken after Ctrl-C: {busy}"
    assert not (fleet.STATE / "pgdata" / "postmaster.pid").exists(), "the embedded PostgreSQL is still running"


def test_ctrl_c_stops_everything_and_the_data_survives(dev: MakeDevRun, client: httpx.Client) -> None:
    stop_and_check(dev)
    assert (fleet.STATE / "pgdata" / "PG_VERSION").exists(), "the data directory is kept"
    # Everything make dev keeps is under the git-ignored .dev/ (and the cache): no droppings.
    assert untracked() == STATE["untracked_before"], untracked() - STATE["untracked_before"]

    again = start_make_dev()
    try:
        again.wait_healthy(180)
        print(f"warm restart healthy after {again.healthy_after:.0f} s")
        user = STATE["user"]
        r = client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        sessions = client.get("/api/chat-history/sessions", headers={"Authorization": f"Bearer {token}"}).json()
        assert STATE["session_id"] in [s["id"] for s in sessions], "yesterday's chat is still there"
        stop_and_check(again)
    finally:
        if again.proc.poll() is None:
            again.kill_everything()
            fleet.stop_embedded_postgres(fleet.STATE / "pgdata")
