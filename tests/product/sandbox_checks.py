"""vibe-coding's sandbox against hostile programs, through nginx :9000 as a user drives it: the
checks every way of running the sandbox must pass — the native fleet (tests/e2e/test_vibe.py),
the vibe-coding container (tests/product/test_images.py) and the docker backend on an engine
(test_images.py too). Each takes a client on :9000 and the user's headers; what differs
between the ways (which host paths exist, the terminal) is a parameter, never a weaker check.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import features
import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

Headers = dict[str, str]

# Never readable from a sandbox, wherever it runs: the system's password hashes, root's files,
# the same through the first process's root (a way out of a mount namespace that shares /proc).
ALWAYS_UNREADABLE = ("/etc/shadow", "/root/.bashrc", "/proc/1/root/etc/shadow")
ALWAYS_UNLISTABLE = ("/root", "/home")


def new_session(client: httpx.Client, headers: Headers, language: str = "python") -> str:
    r = client.post("/api/vibe/session/create", json={"name": "checks", "language": language}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


def run(client: httpx.Client, headers: Headers, sid: str, **body: Any) -> dict[str, Any]:
    r = client.post("/api/vibe/execute", json={"session_id": sid, **body}, headers=headers, timeout=90)
    assert r.status_code == 200, r.text
    return r.json()


def token(headers: Headers) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def ws_url(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/").replace("http://", "ws://", 1)


def check_files_and_three_languages(client: httpx.Client, headers: Headers) -> None:
    r = client.post("/api/vibe/session/create", json={"name": "demo", "template": "hello"}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"session_id", "name", "language", "created_at", "status"}
    sid = body["session_id"]
    h = headers
    files = f"/api/vibe/files/{sid}"
    util = "def twice(x):\n    return 2 * x\n"
    r = client.put(f"{files}/write", json={"path": "lib/util.py", "content": util}, headers=h)
    assert r.status_code == 200, r.text
    assert client.post(f"{files}/move", json={"src": "lib/util.py", "dst": "util.py"}, headers=h).status_code == 200
    assert client.delete(files, params={"path": "lib"}, headers=h).status_code == 200
    session = client.get(f"/api/vibe/session/{sid}", headers=h).json()
    assert sorted(f["path"] for f in session["files"]) == ["main.py", "util.py"]
    assert client.get("/api/vibe/sessions", headers=h).json()[0]["session_id"] == sid

    py = run(client, h, sid, code="from util import twice\nprint(twice(21))", language="python")
    assert (py["status"], py["exit_code"], py["output"]) == ("completed", 0, "42\n"), py
    assert set(py) >= {"execution_id", "status", "output", "error", "exit_code", "execution_time"}
    node = run(client, h, sid, code="console.log([1, 2, 3].map(x => x * 2).join(','))", language="node")
    assert node["output"] == "2,4,6\n", node
    sh = run(client, h, sid, code="echo from-bash > out.txt; cat out.txt; exit 4", language="bash")
    assert (sh["status"], sh["exit_code"], sh["output"]) == ("error", 4, "from-bash\n"), sh
    assert run(client, h, sid, command="python3 main.py")["output"] == "Hello from Harvis\n"
    r = client.get(f"{files}/read", params={"path": "out.txt"}, headers=h)
    assert r.json()["content"] == "from-bash\n"


def check_unauthenticated_and_hostile_paths(client: httpx.Client, headers: Headers) -> None:
    with httpx.Client(base_url=client.base_url) as anonymous:  # `client` may hold a signup cookie
        assert anonymous.get("/api/vibe/sessions").status_code == 401
    sid = new_session(client, headers)
    files = f"/api/vibe/files/{sid}"
    for path in ("../../../etc/passwd", "a/../../b", "..", "/"):
        r = client.put(f"{files}/write", json={"path": path, "content": "x"}, headers=headers)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["message"]
    out = run(client, headers, sid, command="ln -s /etc/passwd pw && ln -s / root && echo ok")
    assert out["output"] == "ok\n", out
    for path in ("pw", "root/etc/hostname"):
        r = client.get(f"{files}/read", params={"path": path}, headers=headers)
        assert r.status_code == 400, (path, r.text)


def check_timeout_kills_a_busy_loop(client: httpx.Client, headers: Headers) -> None:
    sid = new_session(client, headers)
    start = time.monotonic()
    out = run(client, headers, sid, code="while True:\n    pass", timeout=2)
    assert out["status"] == "timeout" and time.monotonic() - start < 8, out
    assert run(client, headers, sid, code="print('next')")["output"] == "next\n"


def check_fork_bomb_is_contained(client: httpx.Client, headers: Headers) -> None:
    sid = new_session(client, headers)
    start = time.monotonic()
    out = run(client, headers, sid, command=":(){ :|:& };:; sleep 10", timeout=3)
    assert time.monotonic() - start < 15, out
    assert client.get("/api/health").status_code == 200
    assert run(client, headers, sid, code="print('still here')")["output"] == "still here\n"


def check_two_gb_allocation_fails(client: httpx.Client, headers: Headers) -> None:
    sid = new_session(client, headers)
    out = run(client, headers, sid, code="b = bytearray(2 * 1024**3)\nprint('allocated')")
    assert "allocated" not in out["output"] and "MemoryError" in out["error"], out


def check_one_gb_file_write_is_cut_off(client: httpx.Client, headers: Headers) -> None:
    sid = new_session(client, headers)
    code = "with open('big.bin', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 1048576)\nprint('done')"
    out = run(client, headers, sid, code=code, timeout=20)
    assert "done" not in out["output"] and out["status"] == "error", out
    size = int(run(client, headers, sid, command="stat -c %s big.bin")["output"])
    assert size <= 100 * 1024 * 1024


# What a sandbox must not reach: the internet, and this machine's own services on the loopback
# (nginx, core-api, PostgreSQL, Redis) — natively and from a container on the host network.
NETWORK_TARGETS = (("1.1.1.1", 443), ("127.0.0.1", 9000), ("127.0.0.1", 8000), ("127.0.0.1", 5432), ("127.0.0.1", 6379))


def check_network_access_fails(client: httpx.Client, headers: Headers) -> None:
    sid = new_session(client, headers)
    code = (
        "import socket, urllib.request\n"
        f"for host, port in {NETWORK_TARGETS!r}:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close(); print('OPEN', host, port)\n"
        "    except OSError:\n"
        "        print('blocked')\n"
        "try:\n"
        "    urllib.request.urlopen('http://example.com', timeout=2); print('OPEN http')\n"
        "except OSError:\n"
        "    print('blocked')\n"
    )
    out = run(client, headers, sid, code=code)
    assert out["output"].split() == ["blocked"] * (len(NETWORK_TARGETS) + 1), out


def check_host_files_are_unreadable(
    client: httpx.Client, headers: Headers, files: Sequence[str] = (), dirs: Sequence[str] = ()
) -> None:
    """`files` (beyond ALWAYS_UNREADABLE) can't be read and `dirs` (beyond ALWAYS_UNLISTABLE)
    show nothing from inside the sandbox (an empty directory of the sandbox's own shows
    nothing); no process the sandbox sees is the service or carries its environment; the
    program is no root, holds no capability and can't gain privileges (setuid programs)."""
    sid = new_session(client, headers)
    script = "".join(f'cat "{p}" >/dev/null 2>&1 && echo "READ {p}"; ' for p in [*ALWAYS_UNREADABLE, *files])
    script += "".join(
        f'[ -n "$(ls -A "{d}" 2>/dev/null)" ] && echo "LISTED {d}"; ' for d in [*ALWAYS_UNLISTABLE, *dirs]
    )
    script += (
        "grep -l -a -e 'DATABASE_UR[L]' -e 'INTERNAL_AUT[H]' /proc/[0-9]*/environ 2>/dev/null | sed 's/^/SECRETS /'; "
        # (a bracket, so the pattern doesn't find this script's own command line)
        "grep -l -a 'uvicor[n]' /proc/[0-9]*/cmdline 2>/dev/null | sed 's/^/SERVICE /'; "
        '[ "$(id -u)" = 0 ] && echo ROOT; '
        "grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status || grep CapEff /proc/self/status; "
        "grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/self/status || grep NoNewPrivs /proc/self/status; "
        "echo end"
    )
    out = run(client, headers, sid, command=script)
    assert out["output"] == "end\n", out


def check_sessions_are_invisible_to_other_users(client: httpx.Client, headers: Headers) -> None:
    """Another user gets 404s for the session, and their sandbox finds its files nowhere."""
    sid = new_session(client, headers)
    marker = f"mine-{sid}.txt"
    intruder = features.bearer(features.signup(client))
    w = client.put(f"/api/vibe/files/{sid}/write", json={"path": marker, "content": "mine"}, headers=headers)
    assert w.status_code == 200, w.text
    for r in (
        client.get(f"/api/vibe/session/{sid}", headers=intruder),
        client.get(f"/api/vibe/files/{sid}/read", params={"path": marker}, headers=intruder),
        client.post("/api/vibe/execute", json={"session_id": sid, "command": f"cat {marker}"}, headers=intruder),
        client.delete(f"/api/vibe/session/{sid}", headers=intruder),
    ):
        assert r.status_code == 404, r.text
    assert client.get("/api/vibe/sessions", headers=intruder).json() == []
    own = new_session(client, intruder)
    search = f"find / -path /proc -prune -o -name {marker} -print 2>/dev/null; echo end"
    out = run(client, intruder, own, command=search, timeout=60)
    assert out["output"] == "end\n", out


async def terminal(url: str, commands: str, expect: str, **kw: Any) -> tuple[str, int | None]:
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


def check_terminal_websocket(client: httpx.Client, headers: Headers) -> None:
    sid = new_session(client, headers)
    base = f"{ws_url(client)}/api/vibecoding/container/{sid}/terminal"
    seen, code = asyncio.run(terminal(f"{base}?token={token(headers)}", "echo $((7*6))-ok; stty size\r", "30 100"))
    assert "42-ok" in seen and "30 100" in seen, seen
    assert code == 1000
    # The cookie works too; another user's session is a 4404 close; no token is 4401.
    cookie = {"additional_headers": {"Cookie": f"access_token={token(headers)}"}}
    seen, _ = asyncio.run(terminal(base, "pwd\r", "/workspace", **cookie))
    assert "/workspace" in seen
    intruder = features.bearer(features.signup(client))
    _, code = asyncio.run(terminal(f"{base}?token={token(intruder)}", "", "x"))
    assert code == 4404
    _, code = asyncio.run(terminal(base, "", "x"))
    assert code == 4401


# Every check that needs nothing but a client and a user, in the order they run.
CHECKS = (
    check_files_and_three_languages,
    check_unauthenticated_and_hostile_paths,
    check_timeout_kills_a_busy_loop,
    check_fork_bomb_is_contained,
    check_two_gb_allocation_fails,
    check_one_gb_file_write_is_cut_off,
    check_network_access_fails,
    check_host_files_are_unreadable,
    check_sessions_are_invisible_to_other_users,
)
