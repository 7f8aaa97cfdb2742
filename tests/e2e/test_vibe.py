"""vibe-coding end to end through nginx :9000: sessions, workspace files, the
bubblewrap sandbox against hostile programs, the terminal WebSocket (through
the gateway's WebSocket proxy) and the AI-assist propose/apply flow.

AI assist runs against the fake Ollama (tests/fakes, Ollama's NDJSON wire
format): it echoes the prompt, so file blocks written into the instruction
come back as the model's edits — deterministic, with the real client,
parsing, diffing and applying in between.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import BASE_URL, ROOT, FakeOllamaProcess, Fleet, User, new_user
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

WS_URL = BASE_URL.replace("http://", "ws://")


def new_session(client: httpx.Client, user: User, language: str = "python") -> str:
    r = client.post("/api/vibe/session/create", json={"name": "e2e", "language": language}, headers=user.bearer)
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


def run(client: httpx.Client, user: User, sid: str, **body: Any) -> dict[str, Any]:
    r = client.post("/api/vibe/execute", json={"session_id": sid, **body}, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def sid(client: httpx.Client, user: User) -> str:
    return new_session(client, user)


def test_session_files_and_three_languages(client: httpx.Client, user: User) -> None:
    r = client.post("/api/vibe/session/create", json={"name": "demo", "template": "hello"}, headers=user.bearer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"session_id", "name", "language", "created_at", "status"}
    sid = body["session_id"]
    h = user.bearer
    files = f"/api/vibe/files/{sid}"
    util = "def twice(x):\n    return 2 * x\n"
    r = client.put(f"{files}/write", json={"path": "lib/util.py", "content": util}, headers=h)
    assert r.status_code == 200, r.text
    assert client.post(f"{files}/move", json={"src": "lib/util.py", "dst": "util.py"}, headers=h).status_code == 200
    assert client.delete(files, params={"path": "lib"}, headers=h).status_code == 200
    session = client.get(f"/api/vibe/session/{sid}", headers=h).json()
    assert sorted(f["path"] for f in session["files"]) == ["main.py", "util.py"]
    assert client.get("/api/vibe/sessions", headers=h).json()[0]["session_id"] == sid

    py = run(client, user, sid, code="from util import twice\nprint(twice(21))", language="python")
    assert (py["status"], py["exit_code"], py["output"]) == ("completed", 0, "42\n"), py
    assert set(py) >= {"execution_id", "status", "output", "error", "exit_code", "execution_time"}
    node = run(client, user, sid, code="console.log([1, 2, 3].map(x => x * 2).join(','))", language="node")
    assert node["output"] == "2,4,6\n", node
    sh = run(client, user, sid, code="echo from-bash > out.txt; cat out.txt; exit 4", language="bash")
    assert (sh["status"], sh["exit_code"], sh["output"]) == ("error", 4, "from-bash\n")
    assert run(client, user, sid, command="python3 main.py")["output"] == "Hello from Harvis\n"
    r = client.get(f"{files}/read", params={"path": "out.txt"}, headers=h)
    assert r.json()["content"] == "from-bash\n"


def test_unauthenticated_and_hostile_paths(client: httpx.Client, user: User, sid: str) -> None:
    with httpx.Client(base_url=BASE_URL) as anonymous:  # `client` holds the signup cookie
        assert anonymous.get("/api/vibe/sessions").status_code == 401
    files = f"/api/vibe/files/{sid}"
    for path in ("../../../etc/passwd", "a/../../b", "..", "/"):
        r = client.put(f"{files}/write", json={"path": path, "content": "x"}, headers=user.bearer)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["message"]
    out = run(client, user, sid, command="ln -s /etc/passwd pw && ln -s / root && echo ok")
    assert out["output"] == "ok\n"
    for path in ("pw", "root/etc/hostname"):
        r = client.get(f"{files}/read", params={"path": path}, headers=user.bearer)
        assert r.status_code == 400, (path, r.text)


def test_timeout_kills_a_busy_loop(client: httpx.Client, user: User, sid: str) -> None:
    start = time.monotonic()
    out = run(client, user, sid, code="while True:\n    pass", timeout=2)
    assert out["status"] == "timeout" and time.monotonic() - start < 8, out
    assert run(client, user, sid, code="print('next')")["output"] == "next\n"


def test_fork_bomb_is_contained(client: httpx.Client, user: User, sid: str) -> None:
    start = time.monotonic()
    out = run(client, user, sid, command=":(){ :|:& };:; sleep 10", timeout=3)
    assert time.monotonic() - start < 15, out
    assert client.get("/api/health").status_code == 200
    assert run(client, user, sid, code="print('still here')")["output"] == "still here\n"


def test_two_gb_allocation_fails(client: httpx.Client, user: User, sid: str) -> None:
    out = run(client, user, sid, code="b = bytearray(2 * 1024**3)\nprint('allocated')")
    assert "allocated" not in out["output"] and "MemoryError" in out["error"], out


def test_one_gb_file_write_is_cut_off(client: httpx.Client, user: User, sid: str) -> None:
    code = "with open('big.bin', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 1048576)\nprint('done')"
    out = run(client, user, sid, code=code, timeout=20)
    assert "done" not in out["output"] and out["status"] == "error", out
    size = int(run(client, user, sid, command="stat -c %s big.bin")["output"])
    assert size <= 100 * 1024 * 1024


def test_network_access_fails(client: httpx.Client, user: User, sid: str) -> None:
    code = (
        "import socket, urllib.request\n"
        "for host, port in (('1.1.1.1', 443), ('127.0.0.1', 9000), ('127.0.0.1', 8000)):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close(); print('OPEN', host, port)\n"
        "    except OSError:\n"
        "        print('blocked')\n"
        "try:\n"
        "    urllib.request.urlopen('http://example.com', timeout=2); print('OPEN http')\n"
        "except OSError:\n"
        "    print('blocked')\n"
    )
    out = run(client, user, sid, code=code)
    assert out["output"].split() == ["blocked"] * 4, out


def test_host_files_are_unreadable(client: httpx.Client, user: User, sid: str) -> None:
    checks = [
        "/etc/shadow",
        f"{ROOT}/scripts/fleet.py",
        f"{ROOT}/.dev/secrets.env",
        "/root/.bashrc",
        "/proc/1/root/etc/shadow",
    ]
    script = "".join(f'cat "{p}" >/dev/null 2>&1 && echo "READ {p}"; ' for p in checks)
    script += f'for d in /root /home "{ROOT}"; do ls "$d" >/dev/null 2>&1 && echo "LISTED $d"; done; echo end'
    out = run(client, user, sid, command=script)
    assert out["output"] == "end\n", out


def test_sessions_are_invisible_to_other_users(client: httpx.Client, user: User, sid: str) -> None:
    intruder = new_user(client)
    client.put(f"/api/vibe/files/{sid}/write", json={"path": "s.txt", "content": "mine"}, headers=user.bearer)
    for r in (
        client.get(f"/api/vibe/session/{sid}", headers=intruder.bearer),
        client.get(f"/api/vibe/files/{sid}/read", params={"path": "s.txt"}, headers=intruder.bearer),
        client.post("/api/vibe/execute", json={"session_id": sid, "command": "cat s.txt"}, headers=intruder.bearer),
        client.delete(f"/api/vibe/session/{sid}", headers=intruder.bearer),
    ):
        assert r.status_code == 404, r.text
    assert client.get("/api/vibe/sessions", headers=intruder.bearer).json() == []


async def _terminal(url: str, commands: str, expect: str, **kw: Any) -> tuple[str, int | None]:
    """Type `commands` into the terminal, collect output until `expect` shows, exit;
    (the output, the close code)."""
    seen = ""
    async with connect(url, open_timeout=10, **kw) as ws:
        try:
            await ws.send(json.dumps({"type": "resize", "cols": 100, "rows": 30}))
            await ws.send(json.dumps({"type": "input", "data": commands}))
            deadline = time.monotonic() + 15
            while expect not in seen and time.monotonic() < deadline:
                try:
                    seen += str(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                except TimeoutError:
                    break
            await ws.send(json.dumps({"type": "input", "data": "exit\r"}))
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            pass
        return seen, ws.close_code


def test_terminal_websocket_runs_a_command(client: httpx.Client, user: User, sid: str) -> None:
    url = f"{WS_URL}/api/vibecoding/container/{sid}/terminal?token={user.token}"
    seen, code = asyncio.run(_terminal(url, "echo $((7*6))-ok; stty size\r", "30 100"))
    assert "42-ok" in seen and "30 100" in seen, seen
    assert code == 1000
    # The cookie works too; another user's session is a 4404 close; no token is 4401.
    cookie = {"additional_headers": {"Cookie": f"access_token={user.token}"}}
    bare = f"{WS_URL}/api/vibecoding/container/{sid}/terminal"
    seen, _ = asyncio.run(_terminal(bare, "pwd\r", "/workspace", **cookie))
    assert "/workspace" in seen
    intruder = new_user(client)
    _, code = asyncio.run(_terminal(f"{bare}?token={intruder.token}", "", "x"))
    assert code == 4404
    _, code = asyncio.run(_terminal(bare, "", "x"))
    assert code == 4401


# ---------------------------------------------------------------- AI assist


@pytest.fixture(scope="module")
def fake_ollama_for_vibe(fleet_proc: Fleet) -> Iterator[str]:
    with FakeOllamaProcess(fleet_proc, "fake-ollama-vibe") as fake:
        try:
            fleet_proc.restart(
                "vibe-coding", {"LLM_PROVIDER": "ollama", "OLLAMA_URL": fake.url, "DEFAULT_MODEL": "fake-llama:latest"}
            )
            yield fake.url
        finally:
            fleet_proc.restart("vibe-coding")


def test_ai_assist_proposes_a_diff_and_applies_it(client: httpx.Client, user: User, fake_ollama_for_vibe: str) -> None:
    sid = new_session(client, user)
    h = user.bearer
    buggy = "def add(a, b):\n    return a - b\n"
    assert client.put(f"/api/vibe/files/{sid}/write", json={"path": "calc.py", "content": buggy}, headers=h).is_success
    instruction = (
        "Fix add and add a test.\n"
        "<<<FILE calc.py\ndef add(a, b):\n    return a + b\n>>>END\n"
        "<<<FILE test_calc.py\nfrom calc import add\nassert add(2, 3) == 5\nprint('ok')\n>>>END"
    )
    r = client.post("/api/vibe/ai/propose", json={"session_id": sid, "instruction": instruction}, headers=h, timeout=60)
    assert r.status_code == 200, r.text
    proposal = r.json()
    assert proposal["files"] == [{"path": "calc.py", "action": "modify"}, {"path": "test_calc.py", "action": "create"}]
    assert "-    return a - b\n+    return a + b\n" in proposal["diff"]
    # Nothing is written before confirmation.
    r = client.get(f"/api/vibe/files/{sid}/read", params={"path": "calc.py"}, headers=h)
    assert r.json()["content"] == buggy
    r = client.post("/api/vibe/ai/apply", json={"session_id": sid, "diff": proposal["diff"]}, headers=h)
    assert r.status_code == 200, r.text
    assert run(client, user, sid, command="python3 test_calc.py")["output"] == "ok\n"
    # The same diff again no longer applies: a conflict, not a silent mis-edit.
    r = client.post("/api/vibe/ai/apply", json={"session_id": sid, "diff": proposal["diff"]}, headers=h)
    assert r.status_code == 409, r.text
