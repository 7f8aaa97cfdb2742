"""The routes without an n8n: validation, ownership, errors (n8n itself: tests/e2e/test_n8n.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit

SERVICE = "n8n-integration"


@pytest.fixture(scope="module")
def client(kit: InternalAuthKit) -> Iterator[TestClient]:
    # Never `n8n_integration.main:app` here: the contract tests import it with their own key.
    from n8n_integration.app import create_app
    from n8n_integration.settings import Settings

    with TestClient(create_app(Settings(internal_auth_public_key=kit.public_key))) as c:
        yield c


def h(kit: InternalAuthKit, user_id: int = 1) -> dict[str, str]:
    return kit.headers(SERVICE, user_id=user_id)


GOOD = {
    "name": "W",
    "nodes": [
        {"name": "Webhook", "type": "n8n-nodes-base.webhook", "parameters": {}},
        {"name": "Set", "type": "n8n-nodes-base.set", "parameters": {}},
    ],
    "connections": {"Webhook": {"main": [[{"node": "Set"}]]}},
}


def test_invalid_workflow_is_422_with_reasons(client: TestClient, kit: InternalAuthKit) -> None:
    bad = {"name": "x", "nodes": [{"name": "A", "type": "evil.node"}]}
    r = client.post("/api/n8n/workflow/create", json={"workflow": bad}, headers=h(kit))
    assert r.status_code == 422 and "node type 'evil.node' is not allowed" in r.json()["message"]


@pytest.mark.parametrize("body", [{}, {"workflow": GOOD, "prompt": "both"}, {"prompt": "x"}])
def test_create_needs_exactly_one_of_workflow_or_prompt(client: TestClient, kit: InternalAuthKit, body) -> None:
    r = client.post("/api/n8n/workflow/create", json=body, headers=h(kit))
    assert r.status_code == 422 and r.json()["message"]


def test_n8n_down_is_503_not_500(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.post("/api/n8n/workflow/create", json={"workflow": GOOD}, headers=h(kit))
    assert r.status_code == 503 and "not reachable" in r.json()["message"]


def test_unknown_ids_are_404(client: TestClient, kit: InternalAuthKit) -> None:
    for method, path, kw in [
        ("GET", "/api/n8n/workflow/status", {"params": {"workflow_id": "abc"}}),
        ("GET", "/api/n8n/workflow/status", {"params": {"execution_id": "1"}}),
        ("POST", "/api/n8n/workflow/execute", {"json": {"workflow_id": "abc"}}),
        ("POST", "/api/n8n/optimize", {"json": {"workflow_id": "abc"}}),
        ("DELETE", "/api/n8n/workflows/abc", {}),
        ("GET", "/api/n8n/workflows/abc", {}),
    ]:
        r = client.request(method, path, headers=h(kit), **kw)
        assert r.status_code == 404, (path, r.text)


def test_status_needs_one_id(client: TestClient, kit: InternalAuthKit) -> None:
    assert client.get("/api/n8n/workflow/status", headers=h(kit)).status_code == 422


def test_others_records_are_invisible(client: TestClient, kit: InternalAuthKit) -> None:
    import asyncio

    import asyncpg

    from n8n_integration.settings import Settings

    settings = Settings()

    async def insert() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute(
                "INSERT INTO n8n_workflows (n8n_id, user_id, name, webhook_path) VALUES ('w-of-7', 7, 'W', 'p')"
            )
            await conn.execute(
                "INSERT INTO n8n_executions (execution_id, n8n_id, user_id) VALUES ('e-of-7', 'w-of-7', 7)"
            )
        finally:
            await conn.close()

    asyncio.run(insert())
    assert client.get("/api/n8n/workflows", headers=h(kit, 7)).json()["workflows"][0]["id"] == "w-of-7"
    assert client.get("/api/n8n/workflows", headers=h(kit, 8)).json()["workflows"] == []
    r = client.get("/api/n8n/workflow/status", params={"execution_id": "e-of-7"}, headers=h(kit, 8))
    assert r.status_code == 404
    # the owner gets past the ownership check to n8n (down here: 503)
    r = client.get("/api/n8n/workflow/status", params={"execution_id": "e-of-7"}, headers=h(kit, 7))
    assert r.status_code == 503


def test_prompt_and_optimize_without_pgvector_are_503(client: TestClient, kit: InternalAuthKit) -> None:
    # The unit-test PostgreSQL 15 has no pgvector: the service still serves, without the knowledge base.
    r = client.post("/api/n8n/workflow/create", json={"prompt": "greet people"}, headers=h(kit))
    assert r.status_code == 503 and "pgvector" in r.json()["message"]
    r = client.post("/api/n8n/optimize", json={"workflow": GOOD}, headers=h(kit))
    assert r.status_code == 503
    # optimize only reviews: a workflow with node types users may not run still gets that far
    review = {**GOOD, "nodes": [{"name": "Webhook", "type": "n8n-nodes-base.scheduleTrigger", "parameters": {}},
                                {"name": "Set", "type": "n8n-nodes-base.rssFeedRead", "parameters": {}}]}  # fmt: skip
    assert client.post("/api/n8n/optimize", json={"workflow": review}, headers=h(kit)).status_code == 503


def test_health_reports_each_dependency(client: TestClient, kit: InternalAuthKit) -> None:
    body = client.get("/api/n8n/health", headers=h(kit)).json()
    checks = {c["name"]: c for c in body["checks"]}
    assert body["status"] == "degraded"
    assert checks["database"]["ok"] and not checks["n8n"]["ok"] and not checks["knowledge_base"]["ok"]
    assert client.get("/ready").status_code == 200  # serving: n8n down only degrades its routes
