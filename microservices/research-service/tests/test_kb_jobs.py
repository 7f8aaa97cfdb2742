"""Ingestion jobs through the app, on the embedded PostgreSQL with pgvector: the page's calls
(start, poll, counts, rebuild, clear), local roots that can't be escaped, web-doc sources
read through the SSRF-safe fetcher (the fixture web on 127.0.0.3; the real sites are
unreachable here, which must end the job quickly with a clear error), cancellation, the
per-source lock and the recovery of jobs a dead process left RUNNING. Also: research chat
grounded in the knowledge base, and the service without pgvector."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit, create_database_sync, drop_database_sync, parse_sse, run_private
from research_service.app import create_app
from research_service.settings import Settings
from research_service.store.jobs import LOCK_SOURCE

from .conftest import Background
from .kb_files import make_pdf

SERVICE = "research-service"
USER, ADMIN, OTHER = 11, 12, 13


@pytest.fixture(scope="module")
def kit() -> InternalAuthKit:
    return InternalAuthKit()


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kbroot")
    (root / "docs").mkdir()
    (root / "docs" / "alpha.md").write_text("# Alpha\n\nThe alpha reactor coolant is heavy water, checked hourly.\n")
    (root / "docs" / "beta.txt").write_text("Beta notes: the beta relay trips at 47 amperes.\n")
    (root / "docs" / "gamma.pdf").write_bytes(make_pdf([["Gamma manual: the gamma valve opens at 3 bar."]]))
    (root / "docs" / ".hidden.md").write_text("hidden notes are not read")
    (root / "docs" / "escape.md").symlink_to("/etc/hostname")
    (root / "playbooks").mkdir()
    (root / "playbooks" / "site.yml").write_text("- hosts: webservers\n  tasks:\n    - name: install nginx-zeta\n")
    return root


@pytest.fixture(scope="module")
def client(kit: InternalAuthKit, pgvector_url: str, roots: Path, ollama: str, site: Any) -> Iterator[TestClient]:
    settings = Settings(
        internal_auth_public_key=kit.public_key,
        redis_url="",
        database_url=pgvector_url,
        rag_local_roots=str(roots),
        research_ssrf_allowlist="127.0.0.3/32",
        research_fetch_timeout_s=3.0,
        llm_provider="ollama",
        ollama_url=ollama,
        default_model="fake-llama:latest",
        core_api_url="http://127.0.0.1:9",
        research_providers="searxng",
        searxng_url="http://127.0.0.1:9",
    )
    with TestClient(create_app(settings)) as c:
        yield c


def h(kit: InternalAuthKit, user_id: int) -> dict[str, str]:
    return kit.headers(SERVICE, user_id=user_id, username=f"u{user_id}", is_admin=user_id == ADMIN)


def start(client: TestClient, headers: dict[str, str], body: dict[str, Any], path: str = "update-local") -> str:
    r = client.post(f"/api/rag/{path}", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def wait(client: TestClient, headers: dict[str, str], job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll like the page does until COMPLETED or FAILED."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/rag/jobs/{job_id}", headers=headers).json()
        assert job["status"] in ("PENDING", "RUNNING", "COMPLETED", "FAILED"), job
        if job["status"] in ("COMPLETED", "FAILED"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")


def stats(client: TestClient, headers: dict[str, str]) -> dict[str, int]:
    r = client.get("/api/rag/sources", headers=headers)
    assert r.status_code == 200
    return r.json()["indexed_stats"]


def test_local_docs_job_reingest_rebuild_clear(client: TestClient, kit: InternalAuthKit, roots: Path) -> None:
    user, admin = h(kit, USER), h(kit, ADMIN)
    job = wait(client, user, start(client, user, {"sources": ["local_docs"]}))
    assert job["status"] == "COMPLETED", job
    assert job["progress"]["total_docs"] == job["progress"]["processed"] == 3
    assert job["progress"]["current_source"] == "local_docs"
    report = job["report"]["local_docs"]
    assert report["added"] == 3 and any("links outside" in e for e in report["errors"])
    assert stats(client, user)["local_docs"] == 3 and stats(client, h(kit, OTHER))["local_docs"] == 3  # shared
    hit = client.post("/api/rag/search", json={"query": "at what pressure does the gamma valve open"},
                      headers=user).json()["results"][0]  # fmt: skip
    assert "3 bar" in hit["text"] and hit["document"] == "docs/gamma.pdf" and hit["location"] == "page 1"

    again = wait(client, user, start(client, user, {"sources": ["local_docs"]}))
    assert again["report"]["local_docs"]["unchanged"] == 3 and again["report"]["local_docs"]["added"] == 0
    (roots / "docs" / "beta.txt").write_text("Beta notes: the beta relay now trips at 52 amperes.\n")
    third = wait(client, user, start(client, user, {"sources": ["local_docs"]}))
    assert third["report"]["local_docs"]["updated"] == 1 and third["report"]["local_docs"]["unchanged"] == 2

    # Shared sources are cleared and rebuilt by administrators only.
    assert client.post("/api/rag/rebuild", json={"source": "local_docs"}, headers=user).status_code == 403
    assert client.delete("/api/rag/sources/local_docs", headers=user).status_code == 403
    (roots / "docs" / "beta.txt").unlink()
    rebuilt = wait(client, admin, start(client, admin, {"source": "local_docs"}, "rebuild"))
    assert rebuilt["status"] == "COMPLETED" and rebuilt["report"]["local_docs"]["removed"] == 1
    assert stats(client, user)["local_docs"] == 2
    r = client.delete("/api/rag/sources/local_docs", headers=admin)
    assert r.status_code == 200 and r.json()["deleted"] == 2 and stats(client, user)["local_docs"] == 0
    assert client.delete("/api/rag/sources/nope", headers=admin).status_code == 404


def test_ansible_paths_stay_under_the_roots(client: TestClient, kit: InternalAuthKit, roots: Path) -> None:
    user = h(kit, USER)
    for bad in ["/etc", f"{roots}/../..", "playbooks", f"{roots}/docs/escape.md/.."]:
        r = client.post("/api/rag/update-local", json={"sources": ["ansible_playbooks"], "ansible_paths": [bad]},
                        headers=user)  # fmt: skip
        assert r.status_code == 422, (bad, r.text)
    job = wait(client, user, start(client, user, {"sources": ["ansible_playbooks"],
                                                  "ansible_paths": [f"{roots}/playbooks"]}))  # fmt: skip
    assert job["status"] == "COMPLETED" and job["report"]["ansible_playbooks"]["added"] == 1
    assert "nginx-zeta" in client.post("/api/rag/search", json={"query": "nginx-zeta"},
                                       headers=user).json()["results"][0]["text"]  # fmt: skip


def test_request_validation(client: TestClient, kit: InternalAuthKit) -> None:
    user = h(kit, USER)
    for body in [{"sources": []}, {"sources": ["nope"]}, {"sources": ["uploads"]},
                 {"sources": ["local_docs"], "extra_urls": ["https://example.com/a"]},
                 {"sources": ["python_docs"], "extra_urls": ["file:///etc/passwd"]}, {}]:  # fmt: skip
        assert client.post("/api/rag/update-local", json=body, headers=user).status_code == 422, body
    assert client.post("/api/rag/rebuild", json={"source": "nope"}, headers=user).status_code == 422
    assert client.get(f"/api/rag/jobs/{uuid.uuid4()}", headers=user).status_code == 404
    assert client.get("/api/rag/jobs/x", headers=user).status_code == 422


def test_web_sources_read_through_the_fetcher_and_fail_clearly_offline(
    client: TestClient, kit: InternalAuthKit, site: Any
) -> None:
    user = h(kit, USER)
    page = f"{site.base}/articles/apollo-11.html"
    started = time.monotonic()
    job = wait(client, user, start(client, user, {"sources": ["python_docs", "docker_docs", "stack_overflow"],
                                                  "extra_urls": [page, "http://127.0.0.1:9/secret"]}))  # fmt: skip
    assert time.monotonic() - started < 45
    assert job["status"] == "COMPLETED", job  # python_docs read the extra page
    assert job["report"]["python_docs"]["added"] == 1
    assert "docker_docs:" in job["error"] and "docs.docker.com" in job["error"]
    assert "stack_overflow: no pages to read" in job["error"]
    assert any("blocked" in e for e in job["report"]["python_docs"]["errors"])  # 127.0.0.1 stays refused
    hit = client.post("/api/rag/search", json={"query": "who flew the command module Columbia"},
                      headers=user).json()["results"][0]  # fmt: skip
    assert "Michael Collins" in hit["text"] and hit["source"] == "python_docs"

    offline = wait(client, user, start(client, user, {"sources": ["owasp_top10"]}))
    assert offline["status"] == "FAILED" and offline["error"].startswith("owasp_top10: ")
    assert offline["progress"]["total_docs"] == offline["progress"]["processed"] == 1


def test_source_lock_cancel_and_isolation(
    client: TestClient, kit: InternalAuthKit, pgvector_url: str, background: Background
) -> None:
    user = h(kit, USER)

    async def hold() -> asyncpg.Connection:
        conn = await asyncpg.connect(pgvector_url)
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_SOURCE, "local_docs:")
        return conn

    holder = background.run(hold())  # another process's job on local_docs, as far as the lock goes
    try:
        job_id = start(client, user, {"sources": ["local_docs"]})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            job = client.get(f"/api/rag/jobs/{job_id}", headers=user).json()
            if job["progress"]["current_phase"] == "waiting for another job on this source":
                break
            time.sleep(0.1)
        assert job["status"] == "RUNNING" and job["progress"]["current_phase"].startswith("waiting"), job
        assert client.get(f"/api/rag/jobs/{job_id}", headers=h(kit, OTHER)).status_code == 404
        assert client.post(f"/api/rag/jobs/{job_id}/cancel", headers=h(kit, OTHER)).status_code == 404
        r = client.post(f"/api/rag/jobs/{job_id}/cancel", headers=user)
        assert r.status_code == 200 and r.json()["message"]
        done = wait(client, user, job_id, 10)
        assert done["status"] == "FAILED" and done["error"] == "Cancelled"
    finally:
        background.run(holder.close())
    listed = client.get("/api/rag/jobs?limit=50", headers=user).json()
    assert listed["count"] == len(listed["jobs"]) >= 1 and job_id in [j["id"] for j in listed["jobs"]]
    assert client.get("/api/rag/jobs", headers=h(kit, OTHER)).json() == {"jobs": [], "count": 0}


def test_jobs_left_running_by_a_dead_process_run_again(client: TestClient, kit: InternalAuthKit, pgvector_url: str):
    async def orphan(attempts: int) -> str:
        conn = await asyncpg.connect(pgvector_url)
        try:
            job_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO kb_jobs (id, user_id, kind, status, sources, attempts, started_at)"
                " VALUES ($1, $2, 'update', 'RUNNING', ARRAY['local_docs'], $3, now())",
                job_id,
                USER,
                attempts,
            )
            return str(job_id)
        finally:
            await conn.close()

    resumed, given_up = run_private(orphan(1)), run_private(orphan(3))
    from research_service.store.jobs import Jobs

    async def recover() -> list[tuple[str, str]]:
        pool = await asyncpg.create_pool(pgvector_url, min_size=1, max_size=2)
        try:
            return await Jobs(pool).recover()
        finally:
            await pool.close()

    assert dict(run_private(recover())) == {resumed: "PENDING", given_up: "FAILED"}
    user = h(kit, USER)
    assert wait(client, user, resumed)["status"] == "COMPLETED"
    failed = client.get(f"/api/rag/jobs/{given_up}", headers=user).json()
    assert failed["status"] == "FAILED" and "Interrupted 3 times" in failed["error"]


def test_page_calls_and_health(client: TestClient, kit: InternalAuthKit) -> None:
    user = h(kit, USER)
    body = client.get("/api/rag/sources", headers=user).json()
    assert isinstance(body["total_documents"], int) and isinstance(body["indexed_stats"], dict)
    assert {"python_docs", "local_docs", "ansible_playbooks", "uploads", "nvd_nist"} <= set(body["indexed_stats"])
    health = client.get("/api/rag/health", headers=user).json()
    assert health["status"] == "healthy" and health["worker"]["running"] is True, health
    assert client.get("/api/rag/config", headers=user).json()["embedding_model"] == "all-MiniLM-L6-v2"
    assert client.get("/api/rag/models", headers=user).json()["current"] == "all-MiniLM-L6-v2"
    assert client.get("/api/rag/health").status_code == 401


def test_research_chat_grounded_in_the_knowledge_base(client: TestClient, kit: InternalAuthKit, ollama: str) -> None:
    user = h(kit, 21)
    text = "# Lab rules\n\nThe freezer code for lab 4 is 7291 and it changes every March.\n"
    r = client.post("/api/rag/documents", files={"file": ("lab.md", text.encode(), "text/markdown")}, headers=user)
    assert r.status_code == 201, r.text
    body = {"message": "What is the freezer code for lab 4?", "history": [], "enableWebSearch": False,
            "use_knowledge_base": True}  # fmt: skip
    with client.stream("POST", "/api/research-chat", json=body, headers=user) as resp:
        assert resp.status_code == 200
        events = parse_sse(resp.read())[0]
    done = events[-1]
    assert done["status"] == "complete", done
    assert done["knowledge_base"] == {"used": True, "hits": 1, "error": None}
    src = done["sources"][0]
    assert (src["index"], src["document"], src["source"], src["locations"]) == (1, "lab.md", "knowledge_base",
                                                                                  ["Lab rules"])  # fmt: skip
    prompt = httpx.get(f"{ollama}/_fake/stats").json()["last_request"]["messages"]
    assert "excerpts of the user's own documents" in prompt[0]["content"]
    assert "[1] lab.md (the user's knowledge base: uploads)" in prompt[-1]["content"]
    assert "7291" in prompt[-1]["content"]

    # Another user's question finds nothing of it: the model answers alone.
    with client.stream("POST", "/api/research-chat", json=body, headers=h(kit, 22)) as resp:
        done = parse_sse(resp.read())[0][-1]
    assert done["knowledge_base"]["used"] is False and done["sources"] == []
    assert "7291" not in httpx.get(f"{ollama}/_fake/stats").json()["last_request"]["messages"][-1]["content"]


def test_without_pgvector_the_page_still_gets_its_answers(kit: InternalAuthKit) -> None:
    name, dsn = create_database_sync("research_nopgvector")  # the machine's PostgreSQL 15: no pgvector
    try:
        settings = Settings(internal_auth_public_key=kit.public_key, redis_url="", database_url=dsn)
        with TestClient(create_app(settings)) as c:
            user = h(kit, USER)
            assert c.get("/ready").status_code == 200
            body = c.get("/api/rag/sources", headers=user).json()
            assert body["total_documents"] == 0 and body["indexed_stats"]["local_docs"] == 0
            assert body["available"] is False
            health = c.get("/api/rag/health", headers=user).json()
            assert health["status"] == "unavailable" and "vector" in health["error"]
            r = c.post("/api/rag/search", json={"query": "x"}, headers=user)
            assert r.status_code == 503 and "not available" in r.json()["message"]
            assert c.post("/api/rag/update-local", json={"sources": ["local_docs"]}, headers=user).status_code == 503
    finally:
        drop_database_sync(name)
    assert os.environ.get("DATABASE_URL", "") != dsn
