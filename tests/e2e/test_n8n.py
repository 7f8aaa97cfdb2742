"""n8n-integration end to end through nginx :9000, against a REAL n8n (npm, started by the
fleet: scripts/n8n_server.py) and the embedded PostgreSQL with pgvector.

Create from JSON → run through n8n's webhook → read the execution and its output →
delete; validation errors; ownership between two users; the knowledge base's retrieval
(real all-MiniLM-L6-v2 embeddings); the prompt builder with the fake Ollama (its answer
echoes the prompt, so a prompt that carries workflow JSON gives a deterministic answer).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import BASE_URL, FakeOllamaProcess, Fleet, new_user, wait_for

GREETING = {
    "name": "E2E greeting",
    "nodes": [
        {
            "name": "Webhook",
            "type": "n8n-nodes-base.webhook",
            "typeVersion": 2,
            "position": [0, 300],
            "parameters": {"httpMethod": "POST", "path": "ignored", "responseMode": "lastNode", "options": {}},
        },
        {
            "name": "Greet",
            "type": "n8n-nodes-base.set",
            "typeVersion": 3.4,
            "position": [220, 300],
            "parameters": {
                "mode": "manual",
                "assignments": {
                    "assignments": [
                        {"id": "g", "name": "greeting", "value": "=Hello, {{ $json.body.name }}!", "type": "string"}
                    ]
                },
                "options": {},
            },
        },
    ],
    "connections": {"Webhook": {"main": [[{"node": "Greet", "type": "main", "index": 0}]]}},
}


_HEALTH: dict[str, Any] = {}


def _n8n_ready() -> bool:
    """GET /api/n8n/health through nginx: n8n, database and knowledge base all ok."""
    with httpx.Client(base_url=BASE_URL, timeout=10) as c:
        if "user" not in _HEALTH:
            _HEALTH["user"] = new_user(c)
        try:
            r = c.get("/api/n8n/health", headers=_HEALTH["user"].bearer)
            _HEALTH["last"] = r.text
            return r.status_code == 200 and r.json()["status"] == "ok"
        except (httpx.HTTPError, ValueError, KeyError):
            return False


@pytest.fixture(scope="module")
def n8n(fleet_proc: Fleet) -> Fleet:
    if not fleet_proc.prep.n8n_command:
        pytest.fail("the e2e fleet has no local n8n (see the fleet's output for why)")
    if not wait_for(_n8n_ready, 180, 1):
        tail = fleet_proc.log_path("n8n").read_text(errors="replace")[-3000:]
        pytest.fail(f"n8n-integration is not ready with n8n: {_HEALTH.get('last')}\n{tail}")
    return fleet_proc


def create(client: httpx.Client, user: Any, body: dict[str, Any]) -> httpx.Response:
    return client.post("/api/n8n/workflow/create", json=body, headers=user.bearer, timeout=120)


def test_json_workflow_runs_on_real_n8n(client: httpx.Client, n8n: Fleet) -> None:
    user = new_user(client)
    r = create(client, user, {"workflow": GREETING})
    assert r.status_code == 200, r.text
    wf = r.json()
    assert wf["active"] is True and wf["name"] == "E2E greeting" and wf["url"].endswith(f"/workflow/{wf['id']}")
    assert [n["type"] for n in wf["nodes"]] == ["n8n-nodes-base.webhook", "n8n-nodes-base.set"]

    r = client.post("/api/n8n/workflow/execute", json={"workflow_id": wf["id"], "data": {"name": "Ada"}},
                    headers=user.bearer, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "success" and run["execution_id"]
    assert run["data"] == [{"greeting": "Hello, Ada!"}]

    r = client.get("/api/n8n/workflow/status", params={"execution_id": run["execution_id"]}, headers=user.bearer)
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["status"] == "success" and st["started_at"] and st["finished_at"]
    assert st["data"] == [{"greeting": "Hello, Ada!"}] and st["workflow_id"] == wf["id"]

    r = client.get("/api/n8n/workflow/status", params={"workflow_id": wf["id"]}, headers=user.bearer)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert r.json()["last_execution"]["execution_id"] == run["execution_id"]

    listed = client.get("/api/n8n/workflows", headers=user.bearer).json()["workflows"]
    assert [w["id"] for w in listed] == [wf["id"]]

    # another user sees none of it
    other = new_user(client)
    for method, path, kw in [
        ("GET", "/api/n8n/workflow/status", {"params": {"workflow_id": wf["id"]}}),
        ("GET", "/api/n8n/workflow/status", {"params": {"execution_id": run["execution_id"]}}),
        ("POST", "/api/n8n/workflow/execute", {"json": {"workflow_id": wf["id"]}}),
        ("POST", "/api/n8n/optimize", {"json": {"workflow_id": wf["id"], "use_llm": False}}),
        ("DELETE", f"/api/n8n/workflows/{wf['id']}", {}),
    ]:
        r = client.request(method, path, headers=other.bearer, **kw)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["message"]
    assert client.get("/api/n8n/workflows", headers=other.bearer).json()["workflows"] == []

    r = client.delete(f"/api/n8n/workflows/{wf['id']}", headers=user.bearer)
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = client.get("/api/n8n/workflow/status", params={"workflow_id": wf["id"]}, headers=user.bearer)
    assert r.status_code == 404


def test_workflow_without_trigger_gets_a_webhook(client: httpx.Client, n8n: Fleet) -> None:
    user = new_user(client)
    body = {
        "name": "Manual sum",
        "nodes": [
            {"name": "Start", "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "parameters": {}},
            {"name": "Sum", "type": "n8n-nodes-base.code", "typeVersion": 2,
             "parameters": {"jsCode": "const n = $input.first().json.body.numbers;"
                                      " return [{json: {sum: n.reduce((a, b) => a + b, 0)}}];"}},
        ],
        "connections": {"Start": {"main": [[{"node": "Sum", "type": "main", "index": 0}]]}},
    }  # fmt: skip
    r = create(client, user, {"workflow": body})
    assert r.status_code == 200, r.text
    assert [n["type"] for n in r.json()["nodes"]] == ["n8n-nodes-base.webhook", "n8n-nodes-base.code"]
    body = {"workflow_id": r.json()["id"], "data": {"numbers": [1, 2, 3.5]}}
    run = client.post("/api/n8n/workflow/execute", json=body, headers=user.bearer, timeout=60).json()
    assert run["status"] == "success", run
    assert run["data"] == [{"sum": 6.5}]


@pytest.mark.parametrize(
    ("workflow", "needle"),
    [
        ({"name": "x", "nodes": []}, "nodes"),
        ({"name": "x", "nodes": [{"name": "A", "type": "n8n-nodes-base.doesNotExist", "typeVersion": 1}]},
         "unknown node type"),
        ({"name": "x", "nodes": [{"name": "A", "type": "n8n-nodes-base.noOp", "typeVersion": 1}],
          "connections": {"A": {"main": [[{"node": "Ghost", "type": "main", "index": 0}]]}}}, "'Ghost' is not a node"),
    ],
)  # fmt: skip
def test_broken_workflows_are_rejected(client: httpx.Client, n8n: Fleet, workflow: dict, needle: str) -> None:
    user = new_user(client)
    r = create(client, user, {"workflow": workflow})
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"]
    assert client.get("/api/n8n/workflows", headers=user.bearer).json()["workflows"] == []


def test_optimize_is_grounded_in_stored_examples(client: httpx.Client, n8n: Fleet) -> None:
    user = new_user(client)
    wf = {
        "name": "Call an API",
        "nodes": [
            {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
             "parameters": {"httpMethod": "POST", "path": "x", "responseMode": "lastNode"}},
            {"name": "Call API", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2,
             "parameters": {"url": "https://example.com/api"}},
        ],
        "connections": {"Webhook": {"main": [[{"node": "Call API", "type": "main", "index": 0}]]}},
    }  # fmt: skip
    r = client.post("/api/n8n/optimize", json={"workflow": wf, "use_llm": False}, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["similar"][0]["slug"] == "webhook-error-handling", out["similar"]
    kinds = {s["kind"] for s in out["suggestions"]}
    assert "reliability" in kinds and "pattern" in kinds
    grounded = [s for s in out["suggestions"] if s.get("example") == "webhook-error-handling"]
    assert grounded and all("similar stored workflow" in s["text"] for s in grounded)


# ---------------------------------------------------------------- the prompt builder (fake Ollama)


@pytest.fixture(scope="module")
def fake_llm(n8n: Fleet) -> Iterator[str]:
    with FakeOllamaProcess(n8n, "fake-ollama-n8n") as fake:
        try:
            env = {"LLM_PROVIDER": "ollama", "OLLAMA_URL": fake.url, "DEFAULT_MODEL": "fake-llama:latest"}
            n8n.restart("n8n-integration", env)
            assert wait_for(_n8n_ready, 60, 0.5)
            yield fake.url
        finally:
            n8n.restart("n8n-integration")


def _echo_safe(obj: dict[str, Any]) -> str:
    # The fake strips `[[...]]` (its steering markers) from what it echoes: keep brackets apart.
    return json.dumps(obj).replace("[[", "[ [").replace("]]", "] ]")


def test_prompt_builds_a_workflow_that_runs(client: httpx.Client, fake_llm: str) -> None:
    user = new_user(client)
    prompt = "Greet people by name when my webhook is called. " + _echo_safe({**GREETING, "name": "From a sentence"})
    r = create(client, user, {"prompt": prompt})
    assert r.status_code == 200, r.text
    wf = r.json()
    assert wf["source"] == "prompt" and wf["name"] == "From a sentence" and wf["attempts"] == 1
    assert wf["examples"][0]["slug"] == "webhook-greeting", wf["examples"]  # retrieval, real embeddings
    run = client.post("/api/n8n/workflow/execute", json={"workflow_id": wf["id"], "data": {"name": "Grace"}},
                      headers=user.bearer, timeout=60).json()  # fmt: skip
    assert run["status"] == "success" and run["data"] == [{"greeting": "Hello, Grace!"}]
    sent = httpx.get(fake_llm + "/_fake/stats").json()["last_request"]
    assert "Similar workflows" in sent["messages"][-1]["content"]
    assert "Webhook greeting" in sent["messages"][-1]["content"]  # the retrieved example went to the model


def test_prompt_with_unusable_answer_is_rejected(client: httpx.Client, fake_llm: str) -> None:
    user = new_user(client)
    bad = {"name": "Broken", "nodes": [{"name": "A", "type": "n8n-nodes-base.teleport", "typeVersion": 1}]}
    r = create(client, user, {"prompt": "Teleport my data somewhere. " + _echo_safe(bad)})
    assert r.status_code == 422, r.text
    assert "did not produce a valid n8n workflow" in r.json()["message"]
    assert client.get("/api/n8n/workflows", headers=user.bearer).json()["workflows"] == []


def test_retrieval_finds_the_relevant_example(client: httpx.Client, n8n: Fleet) -> None:
    user = new_user(client)
    wf = {
        "name": "Headlines",
        "nodes": [
            {"name": "Hourly", "type": "n8n-nodes-base.scheduleTrigger", "typeVersion": 1.2, "parameters": {}},
            {"name": "Feed", "type": "n8n-nodes-base.rssFeedRead", "typeVersion": 1.1, "parameters": {"url": "https://x.test/rss"}},
        ],
        "connections": {"Hourly": {"main": [[{"node": "Feed", "type": "main", "index": 0}]]}},
    }  # fmt: skip
    r = client.post("/api/n8n/optimize", json={"workflow": wf, "use_llm": False}, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["similar"][0]["slug"] == "rss-to-telegram"


def test_optimize_asks_the_model_with_the_similar_examples(client: httpx.Client, fake_llm: str) -> None:
    user = new_user(client)
    wf = create(client, user, {"workflow": GREETING}).json()
    r = client.post("/api/n8n/optimize", json={"workflow_id": wf["id"]}, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["similar"][0]["slug"] == "webhook-greeting"
    assert out["llm_suggestions"].startswith("Echo: Similar stored workflows:")  # the fake echoes what it got
    assert "Webhook greeting" in out["llm_suggestions"]
