"""One real answer per service through nginx :9000, as a user gets it: the checks every
way of starting Harvis must pass (`make dev`: test_make_dev.py; the images:
test_images.py). Each takes a client on :9000 and the user's headers."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

from harvis_testkit import parse_sse

Headers = dict[str, str]


def signup(client: httpx.Client) -> dict[str, str]:
    """The README's sign-up, as a new user does it."""
    suffix = uuid.uuid4().hex[:10]
    creds = {"username": f"new{suffix}", "email": f"new{suffix}@example.com", "password": f"Fresh-Start-{suffix}-42"}
    r = client.post("/api/auth/signup", json=creds)
    assert r.status_code == 200, r.text
    assert r.cookies.get("access_token"), "signup logs the user in with the cookie"
    return {**creds, "token": r.json()["access_token"]}


def bearer(user: dict[str, str]) -> Headers:
    return {"Authorization": f"Bearer {user['token']}"}


def wait_until(what: str, predicate, timeout: float, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def models_ready(client: httpx.Client, headers: Headers) -> Any:
    r = client.get("/api/models", headers=headers, timeout=30)
    if r.status_code == 200 and r.json()["models"]:
        return r.json()["models"]
    return None


def chat(client: httpx.Client, headers: Headers, message: str, session_id: str | None = None) -> list[dict[str, Any]]:
    body = {"message": message, "history": [], "model": "mistral", "session_id": session_id}
    with client.stream("POST", "/api/chat", json=body, headers=headers, timeout=300) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read()
    events, _ = parse_sse(raw)
    return events


def check_demo_model_chat(client: httpx.Client, headers: Headers, ready_timeout: float) -> str:
    """Chat streams the demo model's tokens and keeps the session; returns its id."""
    models = wait_until("the demo model", lambda: models_ready(client, headers), ready_timeout, interval=5)
    assert any(m["name"] == "gemma3-270m" and m["status"] == "available" for m in models), models
    events = chat(client, headers, "Write one sentence about the sea.")
    streamed = [e["content"] for e in events if e["status"] == "streaming" and e.get("content")]
    assert streamed, events[-3:]
    done = events[-1]
    assert done["status"] == "complete", done
    assert done["final_answer"].strip() and len(done["session_id"]) >= 32
    listed = client.get("/api/chat-history/sessions", headers=headers).json()
    assert done["session_id"] in [s["id"] for s in listed]
    return done["session_id"]


def check_research(client: httpx.Client, headers: Headers) -> None:
    # Offline, the search engines find nothing: the answer is still real and well-formed.
    r = client.post("/api/web-search", json={"query": "harvis self-hosted assistant"}, headers=headers, timeout=90)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "harvis self-hosted assistant" and isinstance(body["search_results"], list)


def check_voice_round_trip(client: httpx.Client, headers: Headers) -> None:
    tts = client.post("/api/tts", json={"text": "Good morning from the harbour."}, headers=headers, timeout=120)
    assert tts.status_code == 200, tts.text
    assert tts.headers["content-type"] == "audio/wav" and tts.content[:4] == b"RIFF"
    stt = client.post("/api/stt", files={"file": ("s.wav", tts.content, "audio/wav")}, headers=headers, timeout=120)
    assert stt.status_code == 200, stt.text
    assert "morning" in stt.json()["text"].lower(), stt.json()


def page_screenshot(tmp: Path, html: str) -> bytes:
    """A PNG of a page, taken by the same Chromium the browser service drives."""
    out = tmp / "page.png"
    subprocess.run(
        [
            "/usr/bin/chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp / 'profile'}",
            f"--screenshot={out}",
            "--window-size=900,240",
            "data:text/html," + html,
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return out.read_bytes()


def check_browser(client: httpx.Client, headers: Headers, tmp: Path) -> None:
    # Offline there is no public page to open, and the loopback (where Harvis itself runs) is
    # out of a user's browser's reach by default: that refusal is the first real answer.
    r = client.post("/api/browser/navigate", json={"url": "http://127.0.0.1:8000/health"}, headers=headers)
    assert 400 <= r.status_code < 500 and r.json()["message"], r.text
    # The second: the browser service reads a screenshot (Tesseract OCR).
    png = page_screenshot(tmp, '<h1 style="font:48px sans-serif">Harbour Lights 4417</h1>')
    r = client.post("/api/screen-analyze", json={"image": base64.b64encode(png).decode()}, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    assert "Harbour Lights 4417" in r.json()["text"], r.json()
    # The third: a session's own Chromium starts and renders (its blank first page).
    r = client.post("/api/browser/session", headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    try:
        shot = client.get("/api/browser/screenshot", params={"session_id": sid}, headers=headers, timeout=60)
        assert shot.status_code == 200 and shot.content[:8] == b"\x89PNG\r\n\x1a\n", shot.text[:300]
    finally:
        client.delete(f"/api/browser/session/{sid}", headers=headers)


def check_mcp_files(client: httpx.Client, headers: Headers) -> None:
    tools = client.get("/api/mcp/tools", headers=headers).json()["tools"]
    assert {"write_file", "read_file"} <= {t["name"] for t in tools}
    note = {"name": "write_file", "arguments": {"path": "note.txt", "content": "kept"}}
    wrote = client.post("/api/mcp/tool", json=note, headers=headers)
    assert wrote.status_code == 200 and wrote.json()["ok"], wrote.text
    read = client.post("/api/mcp/tool", json={"name": "read_file", "arguments": {"path": "note.txt"}}, headers=headers)
    assert read.status_code == 200 and "kept" in json.dumps(read.json()["result"]), read.text


def check_sandboxed_run(client: httpx.Client, headers: Headers) -> None:
    r = client.post("/api/vibe/session/create", json={"name": "first", "language": "python"}, headers=headers)
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    run = client.post(
        "/api/vibe/execute",
        json={"session_id": sid, "code": "print(6 * 7)", "language": "python"},
        headers=headers,
        timeout=120,
    )
    assert run.status_code == 200, run.text
    assert run.json()["exit_code"] == 0 and run.json()["output"].strip() == "42", run.json()


WORKFLOW = {
    "name": "Product check",
    "nodes": [
        {
            "name": "Webhook",
            "type": "n8n-nodes-base.webhook",
            "typeVersion": 2,
            "position": [0, 0],
            "parameters": {"httpMethod": "POST", "path": "x", "responseMode": "lastNode", "options": {}},
        },
        {
            "name": "Echo",
            "type": "n8n-nodes-base.set",
            "typeVersion": 3.4,
            "position": [220, 0],
            "parameters": {
                "mode": "manual",
                "assignments": {
                    "assignments": [{"id": "e", "name": "echo", "value": "={{ $json.body.word }}", "type": "string"}]
                },
                "options": {},
            },
        },
    ],
    "connections": {"Webhook": {"main": [[{"node": "Echo", "type": "main", "index": 0}]]}},
}


def run_workflow(client: httpx.Client, headers: Headers, word: str) -> Any:
    """Create and run a workflow on the fleet's n8n; None while n8n answers 503."""
    r = client.post("/api/n8n/workflow/create", json={"workflow": WORKFLOW}, headers=headers, timeout=60)
    if r.status_code == 503:
        assert r.json()["message"], r.text  # a clear message, e.g. "still being installed: 40%…"
        return None
    assert r.status_code == 200, r.text
    wf = r.json()["id"]
    ran = client.post(
        "/api/n8n/workflow/execute", json={"workflow_id": wf, "data": {"word": word}}, headers=headers, timeout=60
    )
    assert ran.status_code == 200, ran.text
    return ran.json()


def check_n8n_workflow(client: httpx.Client, headers: Headers, ready_timeout: float) -> None:
    ran = wait_until("n8n", lambda: run_workflow(client, headers, "ahoy"), ready_timeout, interval=5)
    assert ran["status"] == "success" and ran["data"] == [{"echo": "ahoy"}], ran


def check_artifact(client: httpx.Client, headers: Headers) -> None:
    """A spreadsheet made through the API is rendered (by whichever process renders: core-api
    natively, the artifact-renderer container in the images) and downloads as an XLSX whose
    formula is a real one."""
    spec = {"sheets": [{"name": "Sales", "rows": [["a", 1, 2.5], ["b", 3, "=B1+B2"]]}]}
    r = client.post("/api/artifacts", json={"type": "spreadsheet", "title": "Sales", "spec": spec}, headers=headers)
    assert r.status_code in (200, 201), r.text
    aid = r.json()["id"]

    def done() -> dict[str, Any] | None:
        got = client.get(f"/api/artifacts/{aid}", headers=headers)
        assert got.status_code == 200, got.text
        return got.json() if got.json()["status"] != "generating" else None

    artifact = wait_until("the artifact rendered", done, 60, interval=0.5)
    assert artifact["status"] == "ready", artifact
    file = client.get(f"/api/artifacts/{aid}/download", headers=headers)
    assert file.status_code == 200 and "Sales.xlsx" in file.headers["content-disposition"], file.headers
    with zipfile.ZipFile(BytesIO(file.content)) as xlsx:
        sheet = xlsx.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>B1+B2</f>" in sheet, sheet[:500]
