"""Artifacts end to end through nginx :9000 (issue 18).

Every type through POST /api/artifacts, polled to `ready` as the front end does, downloaded and
opened with the library that consumes it (openpyxl, python-docx, python-pptx, pypdf); a code
artifact's preview in Sandpack's form; another user gets 404 on every route; hostile specs get
4xx. Then core-api is restarted against the fake Ollama (which echoes the user's message, so
its answer holds the `artifact` block the message carries): a chat turn asking for a
spreadsheet ends with an artifact that becomes `ready`, holding that data and a working formula,
and the reopened session shows it in `metadata.artifact`; the same for a document, a PDF, a
presentation and a code project (its preview).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import docx
import httpx
import openpyxl
import pptx
import pypdf
import pytest
from conftest import BASE_URL, FakeOllamaProcess, Fleet, User, new_user

from harvis_testkit import parse_sse  # on the path from conftest

DOCUMENT = {
    "blocks": [
        {"type": "heading", "text": "Quarterly report", "level": 1},
        {"type": "paragraph", "text": "Revenue grew by a tenth."},
        {"type": "list", "items": ["first point", "second point"]},
        {"type": "table", "rows": [["Region", "Sales"], ["North", "12"]]},
    ]
}
CODE = {
    "files": {"/App.tsx": "export default function App() { return <h1>Hello</h1>; }"},
    "entry_file": "/App.tsx",
    "framework": "react",
    "dependencies": {},
}
SPECS: dict[str, dict[str, Any]] = {
    "spreadsheet": {"sheets": [{"name": "Data", "rows": [["a", 1, 2.5], ["b", 3, "=B1+B2"]]}]},
    "document": DOCUMENT,
    "pdf": DOCUMENT,
    "presentation": {"slides": [{"title": "Intro", "bullets": ["one", "two"]}, {"title": "End", "bullets": ["bye"]}]},
    "code": CODE,
    "website": CODE,
    "app": CODE,
}
MIME = {
    "spreadsheet": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "document": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
    "presentation": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def poll(client: httpx.Client, user: User, artifact_id: str, timeout: float = 30) -> dict[str, Any]:
    """As the viewer does (every 2 s there; faster here) until `ready` or `failed`."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/artifacts/{artifact_id}", headers=user.bearer)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.1)


def create(client: httpx.Client, user: User, artifact_type: str, spec: Any, title: str = "T") -> httpx.Response:
    return client.post(
        "/api/artifacts", json={"type": artifact_type, "title": title, "spec": spec}, headers=user.bearer
    )


def check_file(artifact_type: str, data: bytes) -> None:
    if artifact_type == "spreadsheet":
        ws = openpyxl.load_workbook(io.BytesIO(data))["Data"]
        assert [[c.value for c in row] for row in ws.iter_rows()] == [["a", 1, 2.5], ["b", 3, "=B1+B2"]]
        assert ws["C2"].data_type == "f"
    elif artifact_type == "document":
        doc = docx.Document(io.BytesIO(data))
        styles = [(p.style.name, p.text) for p in doc.paragraphs]
        assert ("Heading 1", "Quarterly report") in styles and ("List Bullet", "first point") in styles
        assert [[c.text for c in r.cells] for r in doc.tables[0].rows] == [["Region", "Sales"], ["North", "12"]]
    elif artifact_type == "pdf":
        text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)
        for piece in ("Quarterly report", "Revenue grew by a tenth.", "second point", "North"):
            assert piece in text
    elif artifact_type == "presentation":
        prs = pptx.Presentation(io.BytesIO(data))
        assert [s.shapes.title.text for s in prs.slides] == ["Intro", "End"]
    else:
        assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["App.tsx"]


@pytest.mark.parametrize("artifact_type", list(SPECS))
def test_each_type_becomes_a_file_that_opens(client: httpx.Client, user: User, artifact_type: str) -> None:
    r = create(client, user, artifact_type, SPECS[artifact_type], title=f"My {artifact_type}")
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["status"] == "generating" and made["artifact_type"] == artifact_type
    done = poll(client, user, made["id"])
    assert done["status"] == "ready", done
    assert done["downloadUrl"] == done["download_url"] == f"/api/artifacts/{made['id']}/download"
    r = client.get(done["download_url"], headers=user.bearer)
    assert r.status_code == 200
    ext = {"spreadsheet": "xlsx", "document": "docx", "pdf": "pdf", "presentation": "pptx"}.get(artifact_type, "zip")
    assert r.headers["content-type"].startswith(MIME.get(artifact_type, "application/zip"))
    assert r.headers["content-disposition"].startswith(f'attachment; filename="My {artifact_type}.{ext}"')
    assert done["file_size"] == len(r.content)
    check_file(artifact_type, r.content)
    if artifact_type in ("code", "website", "app"):
        preview = client.get(done["preview_url"], headers=user.bearer)
        assert preview.status_code == 200
        assert preview.json() == {
            "content": {"files": {"App.tsx": CODE["files"]["/App.tsx"]}, "entry_file": "App.tsx",
                        "entryFile": "App.tsx", "dependencies": {}},
            "framework": "react",
            "dependencies": {},
        }  # fmt: skip
    listed = client.get("/api/artifacts/", headers=user.bearer).json()["artifacts"]
    assert [(a["id"], a["artifact_type"], a["status"]) for a in listed] == [(made["id"], artifact_type, "ready")]
    assert client.delete(f"/api/artifacts/{made['id']}", headers=user.bearer).status_code == 200
    assert client.get(f"/api/artifacts/{made['id']}", headers=user.bearer).status_code == 404


def test_another_user_gets_404_everywhere(client: httpx.Client, user: User) -> None:
    made = create(client, user, "code", CODE).json()
    assert poll(client, user, made["id"])["status"] == "ready"
    other = new_user(client)
    for method, suffix in (("GET", ""), ("GET", "/download"), ("GET", "/preview"), ("DELETE", "")):
        path = f"/api/artifacts/{made['id']}{suffix}"
        assert client.request(method, path, headers=other.bearer).status_code == 404, (method, path)
        assert httpx.request(method, BASE_URL + path).status_code == 401  # no token, no cookie
    assert client.get("/api/artifacts/", headers=other.bearer).json() == {"artifacts": []}
    assert client.get("/api/artifacts/not-a-uuid", headers=user.bearer).status_code == 422
    assert client.get(f"/api/artifacts/{made['id']}", headers=user.bearer).status_code == 200


def test_hostile_specs_are_4xx(client: httpx.Client, user: User) -> None:
    deep: Any = "x"
    for _ in range(6):
        deep = {"text": "x", "items": [deep]}
    refused = [
        ("spreadsheet", {"sheets": [{"rows": [[i] for i in range(10_000)]}]}),
        ("spreadsheet", {"sheets": [{"rows": [['=WEBSERVICE("http://169.254.169.254/")'], ["x"]]}]}),
        ("document", {"blocks": [{"type": "list", "items": [deep]}]}),
        ("pdf", {"blocks": [{"type": "paragraph", "text": "x" * 100_000}]}),
        ("presentation", {"slides": [{"title": "s"} for _ in range(500)]}),
        ("presentation", {"slides": [{"title": "s", "image": "bm90IGFuIGltYWdl"}]}),
        ("code", {"files": {"../../etc/passwd": "x"}}),
        ("video", {}),
    ]
    for artifact_type, spec in refused:
        r = create(client, user, artifact_type, spec)
        assert r.status_code == 422, (artifact_type, r.text[:200])
        assert r.json()["message"]
    r = create(client, user, "code", {"files": {"a.js": "x" * 5_000_000}})
    assert r.status_code == 413
    r = client.post(
        "/api/artifacts", content=b"[" * 100_000, headers={**user.bearer, "content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    assert client.get("/api/artifacts/", headers=user.bearer).json() == {"artifacts": []}  # nothing was made


# ---------------------------------------------------------------- from chat


@pytest.fixture(scope="module")
def fake_ollama(fleet_proc: Fleet) -> Iterator[str]:
    """The fake Ollama as a process, and core-api restarted to use it (restored afterwards)."""
    with FakeOllamaProcess(fleet_proc, name="fake-ollama-artifacts") as fake:
        try:
            fleet_proc.restart(
                "core-api",
                {"LLM_PROVIDER": "ollama", "OLLAMA_URL": fake.url, "DEFAULT_MODEL": "fake-llama:latest",
                 "SSE_HEARTBEAT_S": "0.3", "CHAT_MAX_TOKENS": "0"},
            )  # fmt: skip
            yield fake.url
        finally:
            fleet_proc.restart("core-api")


def test_a_chat_turn_makes_a_spreadsheet(client: httpx.Client, fake_ollama: str) -> None:
    user = new_user(client)
    spec = {
        "type": "spreadsheet",
        "title": "Fruit stock",
        "spec": {
            "sheets": [
                {
                    "name": "Stock",
                    "header": True,
                    "rows": [["Fruit", "Qty"], ["apple", 3], ["pear", 4], ["Total", "=SUM(B2:B3)"]],
                }
            ]
        },
    }
    message = f"Make me a spreadsheet of my fruit stock.\n```artifact\n{json.dumps(spec)}\n```"
    with client.stream("POST", "/api/chat", json={"message": message, "model": "fake-llama"}, headers=user.bearer) as r:
        assert r.status_code == 200
        events, _ = parse_sse(r.read())
    done = events[-1]
    assert done["status"] == "complete", done
    art = done["artifact"]
    assert art["type"] == "spreadsheet" and art["title"] == "Fruit stock" and art["status"] in ("generating", "ready")
    assert art["download_url"] == art["downloadUrl"] == f"/api/artifacts/{art['id']}/download"

    ready = poll(client, user, art["id"])
    assert ready["status"] == "ready" and ready["session_id"] == done["session_id"], ready
    data = client.get(art["download_url"], headers=user.bearer).content
    ws = openpyxl.load_workbook(io.BytesIO(data))["Stock"]
    assert [[c.value for c in row] for row in ws.iter_rows()] == spec["spec"]["sheets"][0]["rows"]
    assert ws["B4"].data_type == "f" and ws["B4"].value == "=SUM(B2:B3)"  # a working formula, not text

    # The session, reopened from history, shows the artifact.
    detail = client.get(f"/api/chat-history/sessions/{done['session_id']}", headers=user.bearer).json()
    assistant = detail["messages"][-1]
    assert assistant["role"] == "assistant" and assistant["metadata"]["artifact"]["id"] == art["id"]
    assert assistant["metadata"]["artifact"]["downloadUrl"] == art["download_url"]
    other = new_user(client)
    assert client.get(f"/api/artifacts/{art['id']}", headers=other.bearer).status_code == 404


@pytest.mark.parametrize("artifact_type", ["document", "pdf", "presentation", "code"])
def test_chat_turns_make_the_other_types(client: httpx.Client, fake_ollama: str, artifact_type: str) -> None:
    user = new_user(client)
    block = json.dumps({"type": artifact_type, "title": f"Chat {artifact_type}", "spec": SPECS[artifact_type]})
    message = f"Please make this {artifact_type}.\n```artifact\n{block}\n```"
    with client.stream("POST", "/api/chat", json={"message": message, "model": "fake-llama"}, headers=user.bearer) as r:
        events, _ = parse_sse(r.read())
    art = events[-1]["artifact"]
    assert art["type"] == artifact_type
    ready = poll(client, user, art["id"])
    assert ready["status"] == "ready", ready
    if artifact_type == "code":
        preview = client.get(art["preview_url"], headers=user.bearer).json()
        assert preview["content"]["entry_file"] == "App.tsx" and preview["framework"] == "react"
        assert preview["content"]["files"]["App.tsx"] == CODE["files"]["/App.tsx"]
    check_file(artifact_type, client.get(art["download_url"], headers=user.bearer).content)
    detail = client.get(f"/api/chat-history/sessions/{events[-1]['session_id']}", headers=user.bearer).json()
    assert detail["messages"][-1]["metadata"]["artifact"]["id"] == art["id"]
