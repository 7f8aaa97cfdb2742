"""The HTTP and WebSocket API against a real database and the bubblewrap sandbox."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from conftest import KIT, SERVICE, Caller
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


def test_ready_reports_database_and_sandbox(app_client: TestClient) -> None:
    r = app_client.get("/ready")
    assert r.status_code == 200, r.text
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["database"]["ok"] and checks["sandbox"]["ok"]
    assert "bubblewrap" in checks["sandbox"]["detail"]


def test_session_crud_and_listing(caller: Caller) -> None:
    r = caller.post("/api/vibe/session/create", json={"name": "demo", "language": "python", "template": "hello"})
    assert r.status_code == 200, r.text
    body = r.json()
    sid = body["session_id"]
    assert len(sid) == 36 and body["name"] == "demo" and body["language"] == "python"
    assert body["status"] == "ready" and body["created_at"]
    got = caller.get(f"/api/vibe/session/{sid}").json()
    assert [f["path"] for f in got["files"]] == ["main.py"]
    assert got["backend"] == "bwrap"
    second = caller.session(language="javascript")
    listed = caller.get("/api/vibe/sessions").json()
    assert [s["session_id"] for s in listed][:2] == [second, sid]  # most recent first
    assert listed[0]["language"] == "node"
    r = caller.patch(f"/api/vibe/session/{sid}", json={"name": "renamed"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    r = caller.delete(f"/api/vibe/session/{sid}")
    assert r.status_code == 200
    assert caller.get(f"/api/vibe/session/{sid}").status_code == 404
    assert caller.delete(f"/api/vibe/session/{sid}").status_code == 404


def test_bad_session_input_is_4xx(caller: Caller) -> None:
    assert caller.post("/api/vibe/session/create", json={"name": "x", "language": "cobol"}).status_code == 400
    assert caller.post("/api/vibe/session/create", json={"name": ""}).status_code == 422
    assert caller.post("/api/vibe/session/create", json={"name": "x", "template": "nope"}).status_code == 400
    assert caller.get("/api/vibe/session/not-a-uuid").status_code == 404
    assert caller.get(f"/api/vibe/session/{uuid.uuid4()}").status_code == 404


def test_other_users_sessions_are_invisible(caller: Caller, other: Caller) -> None:
    sid = caller.session()
    assert caller.put(f"/api/vibe/files/{sid}/write", json={"path": "secret.txt", "content": "mine"}).status_code == 200
    for r in (
        other.get(f"/api/vibe/session/{sid}"),
        other.get(f"/api/vibe/files/{sid}/tree"),
        other.get(f"/api/vibe/files/{sid}/read", params={"path": "secret.txt"}),
        other.put(f"/api/vibe/files/{sid}/write", json={"path": "x", "content": "y"}),
        other.delete(f"/api/vibe/files/{sid}", params={"path": "secret.txt"}),
        other.post("/api/vibe/execute", json={"session_id": sid, "command": "cat secret.txt"}),
        other.patch(f"/api/vibe/session/{sid}", json={"name": "stolen"}),
        other.delete(f"/api/vibe/session/{sid}"),
    ):
        assert r.status_code == 404, r.text
    assert sid not in [s["session_id"] for s in other.get("/api/vibe/sessions").json()]
    assert caller.get(f"/api/vibe/files/{sid}/read", params={"path": "secret.txt"}).json()["content"] == "mine"


def test_file_api_round_trip(caller: Caller) -> None:
    sid = caller.session()
    base = f"/api/vibe/files/{sid}"
    assert caller.post(f"{base}/create", json={"path": "src", "type": "directory"}).status_code == 200
    r = caller.post(f"{base}/create", json={"path": "src/app.py", "content": "print('a')\n"})
    assert r.status_code == 200 and r.json()["size"] == 11
    assert caller.post(f"{base}/create", json={"path": "src/app.py", "content": ""}).status_code == 409
    assert caller.put(f"{base}/write", json={"path": "src/app.py", "content": "print('b')\n"}).status_code == 200
    assert caller.get(f"{base}/read", params={"path": "src/app.py"}).json()["content"] == "print('b')\n"
    r = caller.put(f"{base}/write", json={"path": "bin.dat", "content": "AAEC/w==", "encoding": "base64"})
    assert r.status_code == 200
    r = caller.get(f"{base}/read", params={"path": "bin.dat"}).json()
    assert (r["encoding"], r["content"]) == ("base64", "AAEC/w==")
    assert caller.post(f"{base}/move", json={"src": "src/app.py", "dst": "lib/app.py"}).status_code == 200
    tree = caller.get(f"{base}/tree").json()["files"]
    assert [(e["path"], e["type"]) for e in tree] == [("lib", "directory"), ("src", "directory"), ("bin.dat", "file")]
    assert tree[0]["children"][0]["path"] == "lib/app.py"
    assert caller.delete(base, params={"path": "src"}).status_code == 200
    assert caller.delete(base, params={"path": "src"}).status_code == 404
    assert caller.get(f"{base}/read", params={"path": "nope.txt"}).status_code == 404


@pytest.mark.parametrize(
    "path",
    ["../../../etc/passwd", "a/../../x", "..", "a/\x00b", "", "/", "x" * 2000],
)
def test_hostile_paths_are_refused(caller: Caller, path: str) -> None:
    sid = caller.session()
    r = caller.put(f"/api/vibe/files/{sid}/write", json={"path": path, "content": "x"})
    assert r.status_code in (400, 422), r.text
    r = caller.get(f"/api/vibe/files/{sid}/read", params={"path": path})
    assert r.status_code in (400, 404, 422), r.text


def test_symlink_planted_by_code_is_not_followed(caller: Caller) -> None:
    sid = caller.session()
    out = caller.run(sid, command="ln -s /etc/hostname link && ln -s / rootlink && mkfifo pipe && echo ok")
    assert out["output"].strip() == "ok", out
    base = f"/api/vibe/files/{sid}"
    for path in ("link", "rootlink/etc/passwd", "pipe"):
        assert caller.get(f"{base}/read", params={"path": path}).status_code == 400, path
        assert caller.put(f"{base}/write", json={"path": path, "content": "pwned"}).status_code == 400, path
    # Deleting a link removes the link, never its target.
    assert caller.delete(base, params={"path": "rootlink"}).status_code == 200
    assert [e["type"] for e in caller.get(f"{base}/tree").json()["files"] if e["name"] == "link"] == ["symlink"]


def test_file_size_limits(caller: Caller) -> None:
    sid = caller.session()
    big = "x" * (1_048_576 + 1)
    assert caller.put(f"/api/vibe/files/{sid}/write", json={"path": "big", "content": big}).status_code == 413
    caller.run(sid, command="head -c 2000000 /dev/zero > big.bin")
    assert caller.get(f"/api/vibe/files/{sid}/read", params={"path": "big.bin"}).status_code == 413


def test_execute_languages_and_contract_shape(caller: Caller) -> None:
    sid = caller.session()
    py = caller.run(sid, code="import sys\nprint('hi from python')\nprint('oops', file=sys.stderr)\n")
    assert set(py) >= {"execution_id", "status", "output", "error", "exit_code", "execution_time"}
    assert (py["status"], py["exit_code"], py["output"], py["error"]) == ("completed", 0, "hi from python\n", "oops\n")
    node = caller.run(sid, code="console.log(6 * 7)", language="node")
    assert (node["status"], node["output"]) == ("completed", "42\n"), node
    sh = caller.run(sid, code="echo $((2 + 3)); exit 3", language="bash")
    assert (sh["status"], sh["exit_code"], sh["output"]) == ("error", 3, "5\n")
    # Files written by code persist in the workspace and the file API sees them.
    caller.run(sid, command="echo persisted > out.txt")
    r = caller.get(f"/api/vibe/files/{sid}/read", params={"path": "out.txt"})
    assert r.json()["content"] == "persisted\n"
    caller.put(f"/api/vibe/files/{sid}/write", json={"path": "main.py", "content": "print(open('out.txt').read())"})
    assert caller.run(sid, command="python3 main.py")["output"] == "persisted\n\n"
    # Inline code sees the workspace's modules (its working directory).
    caller.put(f"/api/vibe/files/{sid}/write", json={"path": "util.py", "content": "def twice(x):\n    return 2 * x\n"})
    caller.put(f"/api/vibe/files/{sid}/write", json={"path": "lib.js", "content": "exports.half = x => x / 2;\n"})
    assert caller.run(sid, code="from util import twice\nprint(twice(21))")["output"] == "42\n"
    out = caller.run(sid, code="console.log(require('./lib').half(84))", language="node")
    assert out["output"] == "42\n", out


def test_execute_bad_input(caller: Caller) -> None:
    sid = caller.session()
    assert (
        caller.post("/api/vibe/execute", json={"session_id": sid, "code": "1", "language": "cobol"}).status_code == 400
    )
    assert caller.post("/api/vibe/execute", json={"session_id": sid}).status_code == 400
    r = caller.post("/api/vibe/execute", json={"session_id": sid, "code": "1", "command": "ls"})
    assert r.status_code == 400
    r = caller.post("/api/vibe/execute", json={"session_id": sid, "code": "1", "timeout": 100000})
    assert r.status_code == 400
    assert caller.post("/api/vibe/execute", json={"session_id": sid, "code": "1", "timeout": 0}).status_code == 422


def test_timeout_kills_a_busy_loop(caller: Caller) -> None:
    sid = caller.session()
    start = time.monotonic()
    out = caller.run(sid, code="while True:\n    pass\n", timeout=1)
    assert out["status"] == "timeout" and time.monotonic() - start < 5
    assert "timed out" in out["error"]


def test_output_is_capped(caller: Caller) -> None:
    sid = caller.session()
    out = caller.run(sid, command="yes", timeout=10)
    assert out["truncated"] is True and len(out["output"]) <= 262_144
    assert out["execution_time"] < 5


def test_ai_assist_with_the_model_backend_down_is_503(caller: Caller) -> None:
    sid = caller.session()
    r = caller.post("/api/vibe/ai/propose", json={"session_id": sid, "instruction": "add a test"})
    assert r.status_code == 503 and r.json()["message"]


def test_ai_apply_applies_a_diff_and_refuses_a_stale_one(caller: Caller) -> None:
    sid = caller.session()
    caller.put(f"/api/vibe/files/{sid}/write", json={"path": "a.py", "content": "x = 1\ny = 2\n"})
    diff = "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n"
    r = caller.post("/api/vibe/ai/apply", json={"session_id": sid, "diff": diff})
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == [{"path": "a.py", "action": "modify"}]
    assert caller.get(f"/api/vibe/files/{sid}/read", params={"path": "a.py"}).json()["content"] == "x = 1\ny = 3\n"
    assert caller.post("/api/vibe/ai/apply", json={"session_id": sid, "diff": diff}).status_code == 409
    evil = "--- /dev/null\n+++ b/../../evil.py\n@@ -0,0 +1 @@\n+boom\n"
    assert caller.post("/api/vibe/ai/apply", json={"session_id": sid, "diff": evil}).status_code == 400


def test_terminal_runs_a_command(app_client: TestClient, caller: Caller) -> None:
    sid = caller.session()
    url = f"/api/vibecoding/container/{sid}/terminal?cols=100&rows=30"
    with app_client.websocket_connect(url, headers=caller.headers) as ws:
        ws.send_text(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        ws.send_text(json.dumps({"type": "input", "data": "echo $((6*7)); stty size; id -u\r"}))
        seen = ""
        deadline = time.monotonic() + 10
        while "40 120" not in seen and time.monotonic() < deadline:
            seen += ws.receive_text()
        assert "42" in seen and "40 120" in seen, seen
        ws.send_text(json.dumps({"type": "input", "data": "exit\r"}))
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_text()
        assert closed.value.code == 1000


def test_terminal_refuses_unknown_sessions_and_bad_auth(app_client: TestClient, caller: Caller, other: Caller) -> None:
    sid = caller.session()
    with app_client.websocket_connect(f"/api/vibecoding/container/{sid}/terminal", headers=other.headers) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4404
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        app_client.websocket_connect(f"/api/vibecoding/container/{sid}/terminal") as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 4401
    assert KIT.headers(SERVICE)  # the kit signs for this service's audience


def test_terminal_idle_timeout_closes(caller: Caller) -> None:
    from conftest import make_settings

    from vibe_coding.app import create_app

    with TestClient(create_app(make_settings(vibe_terminal_idle_s=2))) as client:
        sid = Caller(client, caller.user_id).session()
        start = time.monotonic()
        url = f"/api/vibecoding/container/{sid}/terminal"
        with client.websocket_connect(url, headers=caller.headers) as ws, pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_text()
        assert closed.value.code == 4408 and time.monotonic() - start > 1.5
