"""The knowledge base end to end through nginx :9000 (research-service's /api/rag behind the
gateway, the fleet's embedded PostgreSQL with pgvector).

First the front end's "RAG corpus" page, with its exact calls: the cookie only, a job started
and polled every 2 s until COMPLETED or FAILED, the counts, rebuild and clear, the health
badge. The web-doc source reads a page of the fixture web on 127.0.0.3 (opened by the
fleet's RESEARCH_SSRF_ALLOWLIST) given as `extra_urls`; its own public pages are unreachable
here, which must end as a clear error, never a hang. Then uploads: a unique fact found by
search, invisible to another user, hostile files refused without a trace. Last, research chat
grounded in the knowledge base, with research-service restarted against the fake Ollama to
see what the model was given.
"""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import BASE_URL, RESEARCH_WEB, FakeOllamaProcess, Fleet, User, new_user

from harvis_testkit import parse_sse  # on the path from conftest

STATUSES = {"PENDING", "RUNNING", "COMPLETED", "FAILED"}


def page_client(user: User) -> httpx.Client:
    """The page's own way of calling: the `access_token` cookie, no Authorization header."""
    return httpx.Client(base_url=BASE_URL, timeout=60, cookies={"access_token": user.token})


def poll(page: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """As the page polls: every 2 s until COMPLETED or FAILED (any other status forever)."""
    deadline = time.monotonic() + timeout
    while True:
        r = page.get(f"/api/rag/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] in STATUSES, job
        assert set(job["progress"]) >= {"total_docs", "processed", "current_source", "current_phase"}
        if job["status"] in ("COMPLETED", "FAILED"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(2)


def start(page: httpx.Client, path: str, body: dict[str, Any]) -> str:
    r = page.post(f"/api/rag/{path}", json=body)
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def indexed(page: httpx.Client) -> dict[str, int]:
    r = page.get("/api/rag/sources")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["total_documents"], int)
    return body["indexed_stats"]


# ---------------------------------------------------------------- the page


def test_the_rag_corpus_page(client: httpx.Client, research_web: None, admin: User) -> None:
    user = new_user(client)
    with page_client(user) as page:
        health = page.get("/api/rag/health")
        assert health.status_code == 200 and health.json()["status"] == "healthy", health.text
        before = indexed(page)
        assert {"python_docs", "docker_docs", "local_docs", "uploads"} <= set(before)

        article = f"{RESEARCH_WEB}/articles/great-wall.html"
        started = time.monotonic()
        job = poll(page, start(page, "update-local", {"sources": ["python_docs"], "extra_urls": [article],
                                                      "python_libraries": ["asyncio"]}))  # fmt: skip
        assert job["status"] == "COMPLETED", job  # the fixture page was read; python.org was not
        assert job["progress"]["total_docs"] == job["progress"]["processed"] >= 2
        assert "docs.python.org" in job["error"] and job["extra_urls"] == [article]
        assert indexed(page)["python_docs"] >= before["python_docs"] + 1

        offline = poll(page, start(page, "update-local", {"sources": ["docker_docs", "kubernetes_docs"]}))
        assert offline["status"] == "FAILED" and "docker_docs:" in offline["error"]
        assert "kubernetes_docs:" in offline["error"]
        assert time.monotonic() - started < 90

        # A shared source is rebuilt and cleared by administrators only; the page reads `detail`.
        r = page.post("/api/rag/rebuild", json={"source": "python_docs"})
        assert r.status_code == 403 and r.json()["detail"]
        assert page.delete("/api/rag/sources/python_docs").status_code == 403
        listed = page.get("/api/rag/jobs?limit=10").json()
        assert listed["count"] == 2 and {j["id"] for j in listed["jobs"]} == {job["id"], offline["id"]}

    with page_client(admin) as page:
        rebuilt = poll(page, start(page, "rebuild", {"source": "python_docs"}))
        assert rebuilt["status"] == "COMPLETED" and rebuilt["report"]["python_docs"]["updated"] >= 1, rebuilt
        r = page.delete("/api/rag/sources/python_docs")
        assert r.status_code == 200 and indexed(page)["python_docs"] == 0

    with page_client(new_user(client)) as other:  # someone else's job is not theirs to see
        assert other.get(f"/api/rag/jobs/{job['id']}").status_code == 404
        assert other.post(f"/api/rag/jobs/{job['id']}/cancel").status_code == 404
        assert other.get("/api/rag/jobs").json() == {"jobs": [], "count": 0}
        assert other.get("/api/rag/config").json()["embedding_model"] == "all-MiniLM-L6-v2"
        assert other.get("/api/rag/models").status_code == 200


def test_the_page_without_a_login(client: httpx.Client) -> None:
    assert client.get("/api/rag/sources").status_code == 401
    assert client.post("/api/rag/search", json={"query": "x"}).status_code == 401


# ---------------------------------------------------------------- uploads


FACT = "The emergency generator at the Tromsø site is serviced every 41 days by Norvolt."


def upload(client: httpx.Client, user: User, name: str, data: bytes) -> httpx.Response:
    return client.post("/api/rag/documents", files={"file": (name, data)}, headers=user.bearer, timeout=120)


def test_upload_found_by_search_and_private(client: httpx.Client) -> None:
    owner, stranger = new_user(client), new_user(client)
    filler = "\n\n".join(f"Section {i}: routine notes about offices, parking and printers." for i in range(30))
    r = upload(client, owner, "sites.md", f"# Sites\n\n{filler}\n\n## Power\n\n{FACT}\n".encode())
    assert r.status_code == 201, r.text
    doc = r.json()
    r = client.post("/api/rag/search", json={"query": "How often is the Tromsø generator serviced?", "k": 3},
                    headers=owner.bearer)  # fmt: skip
    assert r.status_code == 200, r.text
    top = r.json()["results"]
    assert any("41 days" in h["text"] for h in top), top
    hit = next(h for h in top if "41 days" in h["text"])
    assert hit["document"] == "sites.md" and hit["location"] == "Sites > Power" and hit["source"] == "uploads"
    with page_client(owner) as page:
        assert indexed(page)["uploads"] == 1

    # Another user can't see, search or delete it.
    r = client.post("/api/rag/search", json={"query": "Tromsø generator serviced 41 days Norvolt", "k": 10},
                    headers=stranger.bearer)  # fmt: skip
    assert all("Norvolt" not in h["text"] for h in r.json()["results"])
    assert client.get("/api/rag/documents", headers=stranger.bearer).json()["documents"] == []
    assert client.delete(f"/api/rag/documents/{doc['id']}", headers=stranger.bearer).status_code == 404
    assert client.get("/api/rag/documents", headers=owner.bearer).json()["count"] == 1

    # The owner rebuilds and clears their own uploads.
    with page_client(owner) as page:
        assert poll(page, start(page, "rebuild", {"source": "uploads"}))["status"] == "COMPLETED"
        assert page.delete("/api/rag/sources/uploads").status_code == 200 and indexed(page)["uploads"] == 0


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z,
        z.open("word/document.xml", "w", force_zip64=True) as f,
    ):
        for _ in range(200):
            f.write(b"\0" * (1 << 20))  # 200 MB of nothing, ~200 KB packed
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("bomb.docx", zip_bomb(), 413),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Pages 7 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF", 422),
        ("huge.txt", b"word " * 4_200_000, 413),  # over RAG_MAX_UPLOAD_BYTES (20 MB)
        ("program.exe", b"MZ\x90\x00\x03\x00\x00\x00", 415),
        ("../../../../etc/cron.d/evil.docx", b"not a zip", 422),
    ],
)
def test_hostile_uploads_leave_nothing(client: httpx.Client, user: User, name: str, data: bytes, status: int) -> None:
    r = upload(client, user, name, data)
    assert r.status_code == status, r.text[:300]
    assert r.json()["detail"] and r.json()["message"]
    listed = client.get("/api/rag/documents", headers=user.bearer).json()
    assert listed["documents"] == [] and listed["storage"]["used_bytes"] == 0


def test_path_names_become_plain_names(client: httpx.Client, user: User) -> None:
    r = upload(client, user, "../../../../etc/passwd", b"a harmless note that claims to be passwd")
    assert r.status_code == 201 and r.json()["name"] == "passwd"
    assert client.delete(f"/api/rag/documents/{r.json()['id']}", headers=user.bearer).status_code == 200


# ---------------------------------------------------------------- grounded research chat


@pytest.fixture(scope="module")
def fake_llm(fleet_proc: Fleet) -> Iterator[FakeOllamaProcess]:
    """research-service restarted against the fake Ollama, restored afterwards."""
    with FakeOllamaProcess(fleet_proc, "fake-ollama-kb") as llm:
        try:
            env = {"LLM_PROVIDER": "ollama", "OLLAMA_URL": llm.url, "DEFAULT_MODEL": "fake-llama:latest",
                   "CHAT_MAX_TOKENS": "0"}  # fmt: skip
            fleet_proc.restart("research-service", env)
            yield llm
        finally:
            fleet_proc.restart("research-service")


def test_research_chat_cites_the_uploaded_document(client: httpx.Client, fake_llm: FakeOllamaProcess) -> None:
    user = new_user(client)
    code = f"KB-{uuid.uuid4().hex[:6].upper()}"
    text = f"# Vault\n\nThe vault door code for the archive is {code}; it is rotated every Monday.\n"
    assert upload(client, user, "vault.md", text.encode()).status_code == 201
    body = {"message": "What is the vault door code for the archive?", "history": [], "model": "mistral",
            "enableWebSearch": False, "use_knowledge_base": True}  # fmt: skip
    with client.stream("POST", "/api/research-chat", json=body, headers=user.bearer, timeout=240) as r:
        assert r.status_code == 200, r.read()
        events = parse_sse(r.read())[0]
    done = events[-1]
    assert done["status"] == "complete", done
    assert done["knowledge_base"]["used"] is True
    cited = done["sources"][0]
    assert (cited["index"], cited["document"], cited["locations"]) == (1, "vault.md", ["Vault"])
    prompt = fake_llm.stats()["last_request"]["messages"]
    assert code in prompt[-1]["content"] and "[1] vault.md" in prompt[-1]["content"]

    stranger = new_user(client)
    with client.stream("POST", "/api/research-chat", json=body, headers=stranger.bearer, timeout=240) as r:
        done = parse_sse(r.read())[0][-1]
    assert done["knowledge_base"]["used"] is False
    assert code not in fake_llm.stats()["last_request"]["messages"][-1]["content"]
