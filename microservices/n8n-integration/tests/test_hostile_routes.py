"""Issue 14, finding 1, through the routes (no n8n here: it is down, so anything that gets
past validation and the limits answers 503 — a refusal must come before that).

The reproduction: Webhook → HTTP Request to http://127.0.0.1:8001/health, created and run
by an ordinary user, read research-service's internal answer. Literal URLs are vetted at
create time with the same SSRF policy as research and the browser (expressions are left
to the vetting proxy n8n's requests go through: tests/e2e/test_n8n.py). Per-user limits
answer 429 with Retry-After and the contract's JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit

SERVICE = "n8n-integration"
CAPS = {"n8n_max_workflows_per_user": 3, "n8n_max_active_workflows_per_user": 2, "n8n_max_executions_per_hour": 4}


@pytest.fixture(scope="module")
def client(kit: InternalAuthKit) -> Iterator[TestClient]:
    from n8n_integration.app import create_app
    from n8n_integration.settings import Settings

    with TestClient(create_app(Settings(internal_auth_public_key=kit.public_key, **CAPS))) as c:
        yield c


def h(kit: InternalAuthKit, user_id: int) -> dict[str, str]:
    return kit.headers(SERVICE, user_id=user_id)


def http_workflow(url: str) -> dict[str, Any]:
    return {
        "name": "Read a URL",
        "nodes": [
            {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "parameters": {}},
            {
                "name": "Fetch",
                "type": "n8n-nodes-base.httpRequest",
                "typeVersion": 4.2,
                "parameters": {"url": url, "options": {}},
            },
        ],
        "connections": {"Webhook": {"main": [[{"node": "Fetch", "type": "main", "index": 0}]]}},
    }


def test_the_reported_workflow_is_refused(client: TestClient, kit: InternalAuthKit) -> None:
    """The issue's reproduction: it must never reach n8n."""
    body = {"workflow": http_workflow("http://127.0.0.1:8001/health")}
    r = client.post("/api/n8n/workflow/create", json=body, headers=h(kit, 1401))
    assert r.status_code == 422, r.text
    assert "127.0.0.1" in r.json()["message"] and "not allowed" in r.json()["message"]
    assert r.json()["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/internal/history",  # core-api's internal API
        "http://127.0.0.1:5678/api/v1/workflows",  # n8n itself
        "http://127.0.0.1:9000/api/health",
        "http://127.0.0.1:5432/",  # PostgreSQL
        "http://127.0.0.1:6379/",  # Redis
        "http://127.0.0.1:11434/api/tags",  # Ollama's admin API
        "http://localhost:8002/health",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433:8001/health",
        "http://0x7f000001:8001/health",
        "http://0177.0.0.1:8001/health",
        "http://127.1:8001/health",
        "http://[::1]:8001/health",
        "http://[::ffff:127.0.0.1]:8001/health",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http://user:pw@example.com/",
        "example.com/no-scheme",
    ],
)
def test_internal_literal_urls_are_refused_at_create(client: TestClient, kit: InternalAuthKit, url: str) -> None:
    r = client.post("/api/n8n/workflow/create", json={"workflow": http_workflow(url)}, headers=h(kit, 1402))
    assert r.status_code == 422, r.text
    assert "URL" in r.json()["message"] and "'Fetch'" in r.json()["message"]


def test_expression_urls_are_left_to_the_proxy(client: TestClient, kit: InternalAuthKit) -> None:
    # Known only at run time: vetted by the proxy n8n's requests go through (e2e). Here it gets
    # past validation to n8n, which is down.
    wf = http_workflow("={{ 'http://127.0.0.1:8001/health' }}")
    r = client.post("/api/n8n/workflow/create", json={"workflow": wf}, headers=h(kit, 1403))
    assert r.status_code == 503, r.text


def test_code_and_database_nodes_are_refused(client: TestClient, kit: InternalAuthKit) -> None:
    for node_type, params in [
        ("n8n-nodes-base.code", {"jsCode": "return [{json: {env: process.env}}]"}),
        ("n8n-nodes-base.postgres", {"operation": "executeQuery", "query": "SELECT * FROM users"}),
        ("n8n-nodes-base.redis", {"operation": "keys", "keyPattern": "*"}),
    ]:
        wf = http_workflow("https://example.com/")
        wf["nodes"][1] = {"name": "Fetch", "type": node_type, "typeVersion": 1, "parameters": params}
        r = client.post("/api/n8n/workflow/create", json={"workflow": wf}, headers=h(kit, 1404))
        assert r.status_code == 422, (node_type, r.text)
        assert node_type in r.json()["message"]


def test_another_users_credentials_are_refused(client: TestClient, kit: InternalAuthKit) -> None:
    wf = http_workflow("https://example.com/")
    wf["nodes"][1]["credentials"] = {"httpHeaderAuth": {"id": "7", "name": "Alice's API token"}}
    r = client.post("/api/n8n/workflow/create", json={"workflow": wf}, headers=h(kit, 1405))
    assert r.status_code == 422, r.text
    assert "credentials" in r.json()["message"]


# ---------------------------------------------------------------- per-user limits


def _db(coro_fn: Any) -> Any:
    from n8n_integration.settings import Settings

    async def run() -> Any:
        conn = await asyncpg.connect(Settings().database_url)
        try:
            return await coro_fn(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _assert_429(r: Any, needle: str) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    body = r.json()
    assert body["detail"] and needle in body["message"], body


def test_workflow_count_is_limited(client: TestClient, kit: InternalAuthKit) -> None:
    async def fill(conn: asyncpg.Connection) -> None:
        for i in range(3):
            await conn.execute(
                "INSERT INTO n8n_workflows (n8n_id, user_id, name, webhook_path) VALUES ($1, 1410, 'W', 'p')",
                f"w1410-{i}",
            )

    _db(fill)
    r = client.post("/api/n8n/workflow/create", json={"workflow": http_workflow("https://example.com/")},
                    headers=h(kit, 1410))  # fmt: skip
    _assert_429(r, "3 workflows")
    # another user is not affected (gets past the limit to n8n, down here)
    r = client.post("/api/n8n/workflow/create", json={"workflow": http_workflow("https://example.com/")},
                    headers=h(kit, 1411))  # fmt: skip
    assert r.status_code == 503, r.text


def test_active_workflows_are_limited(client: TestClient, kit: InternalAuthKit) -> None:
    async def fill(conn: asyncpg.Connection) -> None:
        for i in range(3):
            await conn.execute(
                "INSERT INTO n8n_workflows (n8n_id, user_id, name, webhook_path, active)"
                " VALUES ($1, 1412, 'W', 'p', $2)",
                f"w1412-{i}",
                i < 2,
            )

    _db(fill)
    r = client.post("/api/n8n/workflows/w1412-2/activate", headers=h(kit, 1412))
    _assert_429(r, "2 active workflows")
    # running an inactive workflow activates it: the same limit
    r = client.post("/api/n8n/workflow/execute", json={"workflow_id": "w1412-2"}, headers=h(kit, 1412))
    _assert_429(r, "2 active workflows")


def test_executions_per_hour_are_limited(client: TestClient, kit: InternalAuthKit) -> None:
    async def fill(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO n8n_workflows (n8n_id, user_id, name, webhook_path, active)"
            " VALUES ('w1413', 1413, 'W', 'p', true)"
        )
        for _ in range(4):
            await conn.execute(
                "INSERT INTO n8n_runs (user_id, n8n_id, started_at)"
                " VALUES (1413, 'w1413', now() - interval '30 minutes')"
            )

    _db(fill)
    r = client.post("/api/n8n/workflow/execute", json={"workflow_id": "w1413"}, headers=h(kit, 1413))
    _assert_429(r, "4 executions per hour")
    assert 1700 <= int(r.headers["Retry-After"]) <= 1801  # the oldest run leaves the window in ~30 min
