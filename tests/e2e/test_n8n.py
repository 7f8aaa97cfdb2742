"""n8n-integration end to end through nginx :9000, against a REAL n8n (npm, started by the
fleet: scripts/n8n_server.py) and the embedded PostgreSQL with pgvector.

Create from JSON → run through n8n's webhook → read the execution and its output →
delete; validation errors; ownership between two users; the knowledge base's retrieval
(real all-MiniLM-L6-v2 embeddings); the prompt builder with the fake Ollama (its answer
echoes the prompt, so a prompt that carries workflow JSON gives a deterministic answer).

Issue 14 (an ordinary user read research-service's internal /health through an HTTP Request
node): every outbound request of a user's workflow goes through n8n-integration's vetting
proxy (the SSRF policy of research and the browser), at create time for literal URLs and at
run time through the real n8n for the rest — internal addresses, metadata, numeric and IPv6
spellings, names resolving to loopback, redirects. The "outside world" is a site on
127.0.0.3, which N8N_SSRF_ALLOWLIST opens (as RESEARCH_SSRF_ALLOWLIST does for research).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from conftest import BASE_URL, FakeOllamaProcess, Fleet, new_user, wait_for

# n8n-integration in this module: the outside world on 127.0.0.3, and small per-user limits so
# the concurrency checks stay quick (each test signs up its own users).
N8N_ENV = {
    "N8N_SSRF_ALLOWLIST": "127.0.0.3/32",
    "N8N_MAX_WORKFLOWS_PER_USER": "6",
    "N8N_MAX_ACTIVE_WORKFLOWS_PER_USER": "4",
    "N8N_MAX_EXECUTIONS_PER_HOUR": "12",
}

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
def n8n(fleet_proc: Fleet) -> Iterator[Fleet]:
    if not fleet_proc.prep.n8n_command:
        pytest.fail("the e2e fleet has no local n8n (see the fleet's output for why)")
    fleet_proc.restart("n8n-integration", N8N_ENV)
    if not wait_for(_n8n_ready, 180, 1):
        tail = fleet_proc.log_path("n8n").read_text(errors="replace")[-3000:]
        pytest.fail(f"n8n-integration is not ready with n8n: {_HEALTH.get('last')}\n{tail}")
    try:
        yield fleet_proc
    finally:
        fleet_proc.restart("n8n-integration")


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
            {"name": "Sum", "type": "n8n-nodes-base.set", "typeVersion": 3.4,
             "parameters": {"mode": "manual", "assignments": {"assignments": [
                 {"id": "s", "name": "sum", "type": "number",
                  "value": "={{ $json.body.numbers.reduce((a, b) => a + b, 0) }}"}]}}},
        ],
        "connections": {"Start": {"main": [[{"node": "Sum", "type": "main", "index": 0}]]}},
    }  # fmt: skip
    r = create(client, user, {"workflow": body})
    assert r.status_code == 200, r.text
    assert [n["type"] for n in r.json()["nodes"]] == ["n8n-nodes-base.webhook", "n8n-nodes-base.set"]
    body = {"workflow_id": r.json()["id"], "data": {"numbers": [1, 2, 3.5]}}
    run = client.post("/api/n8n/workflow/execute", json=body, headers=user.bearer, timeout=60).json()
    assert run["status"] == "success", run
    assert run["data"] == [{"sum": 6.5}]


@pytest.mark.parametrize(
    ("workflow", "needle"),
    [
        ({"name": "x", "nodes": []}, "nodes"),
        ({"name": "x", "nodes": [{"name": "A", "type": "n8n-nodes-base.doesNotExist", "typeVersion": 1}]},
         "node type 'n8n-nodes-base.doesNotExist' is not allowed"),
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
            n8n.restart("n8n-integration", {**N8N_ENV, **env})
            assert wait_for(_n8n_ready, 60, 0.5)
            yield fake.url
        finally:
            n8n.restart("n8n-integration", N8N_ENV)


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
    assert r.json()["similar"][0]["slug"] == "webhook-rss-headlines"


def test_optimize_asks_the_model_with_the_similar_examples(client: httpx.Client, fake_llm: str) -> None:
    user = new_user(client)
    wf = create(client, user, {"workflow": GREETING}).json()
    r = client.post("/api/n8n/optimize", json={"workflow_id": wf["id"]}, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["similar"][0]["slug"] == "webhook-greeting"
    assert out["llm_suggestions"].startswith("Echo: Similar stored workflows:")  # the fake echoes what it got
    assert "Webhook greeting" in out["llm_suggestions"]


# ---------------------------------------------------------------- issue 14: n8n reads the internal network


class _Site(BaseHTTPRequestHandler):
    """The "outside world" on 127.0.0.3: a JSON page, and a redirect to wherever ?to= says."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Site.seen.append(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"site": "hello from outside"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.3", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.3:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch_workflow(url: str) -> dict[str, Any]:
    """Webhook → HTTP Request GET `url`, answering the full response even for 4xx/5xx (so a
    refusal by the proxy is visible as such, not as an error), with a short timeout."""
    return {
        "name": "Fetch a URL",
        "nodes": [
            {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "parameters": {}},
            {
                "name": "Fetch",
                "type": "n8n-nodes-base.httpRequest",
                "typeVersion": 4.2,
                "parameters": {
                    "url": url,
                    "options": {
                        "timeout": 5000,
                        "response": {"response": {"fullResponse": True, "neverError": True, "responseFormat": "text"}},
                    },
                },
            },
        ],
        "connections": {"Webhook": {"main": [[{"node": "Fetch", "type": "main", "index": 0}]]}},
    }


def run(client: httpx.Client, user: Any, workflow_id: str) -> dict[str, Any]:
    r = client.post("/api/n8n/workflow/execute", json={"workflow_id": workflow_id}, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_reported_workflow_is_refused(client: httpx.Client, n8n: Fleet) -> None:
    """The report: Webhook → HTTP Request http://127.0.0.1:8001/health read research-service."""
    user = new_user(client)
    r = create(client, user, {"workflow": fetch_workflow("http://127.0.0.1:8001/health")})
    assert r.status_code == 422, r.text
    assert "not allowed" in r.json()["message"]
    assert client.get("/api/n8n/workflows", headers=user.bearer).json()["workflows"] == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/health",
        "http://127.0.0.1:5678/healthz",
        "http://localhost:8005/health",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433:8001/health",
        "http://0x7f000001:8001/health",
        "http://0177.0.0.1:8001/health",
        "http://[::1]:8001/health",
        "http://[::ffff:127.0.0.1]:8001/health",
    ],
)
def test_internal_literal_urls_are_refused_at_create(client: httpx.Client, n8n: Fleet, url: str) -> None:
    r = create(client, new_user(client), {"workflow": fetch_workflow(url)})
    assert r.status_code == 422, r.text
    assert "not allowed" in r.json()["message"]


RUNTIME_TARGETS = [
    "http://127.0.0.1:8001/health",  # research-service, as reported
    "http://127.0.0.1:8000/health",  # core-api
    "http://127.0.0.1:5678/healthz",  # n8n itself
    "http://127.0.0.1:9000/health",  # nginx
    "http://localhost:8005/health",  # a name that resolves to loopback
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://2130706433:8001/health",
    "http://0x7f000001:8001/health",
    "http://0177.0.0.1:8001/health",
    "http://[::1]:8001/health",
    "http://[::ffff:127.0.0.1]:8001/health",
    "https://127.0.0.1:8001/health",  # a CONNECT tunnel
    "{site}/redirect?to=http://127.0.0.1:8001/health",  # an allowed site redirecting inside
]


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_internal_addresses_are_refused_at_run_time(client: httpx.Client, n8n: Fleet, site: str, target: str) -> None:
    """Known only when the workflow runs (an expression): n8n's request goes through the
    vetting proxy, which answers 403 with X-Harvis-Blocked instead of connecting."""
    user = new_user(client)
    url = target.format(site=site)
    r = create(client, user, {"workflow": fetch_workflow("={{ '" + url + "' }}")})
    assert r.status_code == 200, r.text
    out = run(client, user, r.json()["id"])
    text = json.dumps(out)
    assert '"service"' not in text and "research-service" not in text, text[:2000]
    assert out["status"] == "success", text[:2000]
    (answer,) = out["data"]
    assert answer["statusCode"] == 403 and answer["headers"].get("x-harvis-blocked") == "1", answer


def test_the_outside_world_is_reachable_through_the_proxy(client: httpx.Client, n8n: Fleet, site: str) -> None:
    user = new_user(client)
    before = len(_Site.seen)
    for url in (f"{site}/page", "={{ '" + site + "/expr' }}"):  # a literal (vetted at create too) and an expression
        r = create(client, user, {"workflow": fetch_workflow(url)})
        assert r.status_code == 200, r.text
        out = run(client, user, r.json()["id"])
        assert out["status"] == "success", out
        (answer,) = out["data"]
        assert answer["statusCode"] == 200 and json.loads(answer["data"]) == {"site": "hello from outside"}, answer
    assert _Site.seen[before:] == ["/page", "/expr"]


def test_a_redirect_inside_stops_at_the_proxy(client: httpx.Client, n8n: Fleet, site: str) -> None:
    user = new_user(client)
    r = create(client, user, {"workflow": fetch_workflow(f"{site}/redirect?to=http://127.0.0.1:8001/health")})
    assert r.status_code == 200, r.text  # the literal URL is the allowed site: only the hop is internal
    out = run(client, user, r.json()["id"])
    (answer,) = out["data"]
    assert answer["statusCode"] == 403 and answer["headers"].get("x-harvis-blocked") == "1", answer
    assert "research-service" not in json.dumps(out)


def test_a_webhook_answering_with_a_redirect_is_not_followed(client: httpx.Client, n8n: Fleet) -> None:
    """The Respond to Webhook node's redirect is n8n's answer to n8n-integration: following it
    would make n8n-integration itself fetch the internal URL for the user."""
    user = new_user(client)
    wf = {
        "name": "Redirect me",
        "nodes": [
            {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
             "parameters": {"responseMode": "responseNode"}},
            {"name": "Answer", "type": "n8n-nodes-base.respondToWebhook", "typeVersion": 1.1,
             "parameters": {"respondWith": "redirect", "redirectURL": "http://127.0.0.1:8001/health"}},
        ],
        "connections": {"Webhook": {"main": [[{"node": "Answer", "type": "main", "index": 0}]]}},
    }  # fmt: skip
    r = create(client, user, {"workflow": wf})
    assert r.status_code == 200, r.text
    out = run(client, user, r.json()["id"])
    assert "research-service" not in json.dumps(out), out
    assert 300 <= out["http_status"] < 400, out


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        ({"type": "n8n-nodes-base.code", "typeVersion": 2,
          "parameters": {"jsCode": "return [{json: {env: process.env}}];"}}, "n8n-nodes-base.code"),
        ({"type": "n8n-nodes-base.executeCommand", "typeVersion": 1, "parameters": {"command": "id"}},
         "n8n-nodes-base.executeCommand"),
        ({"type": "n8n-nodes-base.postgres", "typeVersion": 2.5,
          "parameters": {"operation": "executeQuery", "query": "SELECT * FROM users"}}, "n8n-nodes-base.postgres"),
        ({"type": "n8n-nodes-base.redis", "typeVersion": 1, "parameters": {"operation": "keys", "keyPattern": "*"}},
         "n8n-nodes-base.redis"),
        ({"type": "n8n-nodes-base.executeWorkflow", "typeVersion": 1.1, "parameters": {"workflowId": "1"}},
         "n8n-nodes-base.executeWorkflow"),
        ({"type": "n8n-nodes-base.set", "typeVersion": 3.4, "parameters": {"mode": "manual", "assignments": {
            "assignments": [{"id": "a", "name": "x", "type": "string",
                             "value": "={{ this.constructor.constructor('return process')().version }}"}]}}},
         "expression"),
        ({"type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "parameters": {"url": "https://example.com/"},
          "credentials": {"httpHeaderAuth": {"id": "1", "name": "someone else's"}}}, "credentials"),
    ],
)  # fmt: skip
def test_unsafe_nodes_are_refused(client: httpx.Client, n8n: Fleet, node: dict[str, Any], needle: str) -> None:
    user = new_user(client)
    wf = fetch_workflow("https://example.com/")
    wf["nodes"][1] = {"name": "Fetch", **node}
    r = create(client, user, {"workflow": wf})
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"]
    assert client.get("/api/n8n/workflows", headers=user.bearer).json()["workflows"] == []


def test_schedules_are_refused(client: httpx.Client, n8n: Fleet) -> None:
    wf = {
        "name": "Every second, forever",
        "nodes": [
            {"name": "Tick", "type": "n8n-nodes-base.scheduleTrigger", "typeVersion": 1.2,
             "parameters": {"rule": {"interval": [{"field": "seconds", "secondsInterval": 1}]}}},
            {"name": "Noop", "type": "n8n-nodes-base.noOp", "typeVersion": 1, "parameters": {}},
        ],
        "connections": {"Tick": {"main": [[{"node": "Noop", "type": "main", "index": 0}]]}},
    }  # fmt: skip
    r = create(client, new_user(client), {"workflow": wf})
    assert r.status_code == 422, r.text
    assert "schedule" in r.json()["message"]


def test_a_stored_unsafe_workflow_is_not_run(client: httpx.Client, n8n: Fleet) -> None:
    """A workflow created before these checks (straight in n8n, owned in our table) is checked
    again before it runs."""
    user = new_user(client)
    me = client.get("/api/auth/me", headers=user.bearer).json()
    key = (n8n.n8n_dir / "api-key").read_text().strip()
    legacy = {
        "name": "Legacy code",
        "nodes": [
            {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "position": [0, 0],
             "webhookId": "legacy-hook", "parameters": {"httpMethod": "POST", "path": "legacy-code-e2e",
                                                          "responseMode": "lastNode"}},
            {"name": "Code", "type": "n8n-nodes-base.code", "typeVersion": 2, "position": [220, 0],
             "parameters": {"jsCode": "return [{json: {pid: process.pid}}];"}},
        ],
        "connections": {"Webhook": {"main": [[{"node": "Code", "type": "main", "index": 0}]]}},
        "settings": {},
    }  # fmt: skip
    made = httpx.post("http://127.0.0.1:5678/api/v1/workflows", json=legacy, headers={"X-N8N-API-KEY": key})
    assert made.status_code == 200, made.text
    wid = made.json()["id"]

    async def own() -> None:
        conn = await asyncpg.connect(n8n.prep.database_url)
        try:
            await conn.execute(
                "INSERT INTO n8n_workflows (n8n_id, user_id, name, webhook_path) VALUES ($1, $2, 'Legacy', $3)",
                wid,
                int(me["id"]),
                "legacy-code-e2e",
            )
        finally:
            await conn.close()

    asyncio.run(own())
    r = client.post("/api/n8n/workflow/execute", json={"workflow_id": wid}, headers=user.bearer, timeout=60)
    assert r.status_code == 422, r.text
    assert "n8n-nodes-base.code" in r.json()["message"]
    r = client.post(f"/api/n8n/workflows/{wid}/activate", headers=user.bearer)
    assert r.status_code == 422, r.text


# ---------------------------------------------------------------- issue 14: per-user limits, in parallel


def _statuses(responses: list[httpx.Response]) -> list[int]:
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["detail"] and r.json()["message"]
    return sorted(r.status_code for r in responses)


async def _parallel(user: Any, calls: list[tuple[str, str, dict[str, Any] | None]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=BASE_URL, headers=user.bearer, timeout=120) as c:
        return list(await asyncio.gather(*(c.request(m, p, json=b) for m, p, b in calls)))


def test_parallel_creates_and_activations_stay_within_the_limits(client: httpx.Client, n8n: Fleet) -> None:
    user = new_user(client)
    body = {"workflow": GREETING, "activate": False}
    statuses = _statuses(asyncio.run(_parallel(user, [("POST", "/api/n8n/workflow/create", body)] * 10)))
    assert statuses == [200] * 6 + [429] * 4, statuses
    ids = [w["id"] for w in client.get("/api/n8n/workflows", headers=user.bearer).json()["workflows"]]
    assert len(ids) == 6

    calls = [("POST", f"/api/n8n/workflows/{i}/activate", None) for i in ids]
    statuses = _statuses(asyncio.run(_parallel(user, calls)))
    assert statuses == [200] * 4 + [429] * 2, statuses

    # a deleted workflow frees its place
    assert client.delete(f"/api/n8n/workflows/{ids[0]}", headers=user.bearer).status_code == 200
    assert create(client, user, {"workflow": GREETING, "activate": False}).status_code == 200
    assert create(client, user, {"workflow": GREETING, "activate": False}).status_code == 429


def test_parallel_executions_stay_within_the_hourly_limit(client: httpx.Client, n8n: Fleet) -> None:
    user = new_user(client)
    wf = create(client, user, {"workflow": GREETING}).json()
    body = {"workflow_id": wf["id"], "data": {"name": "Ada"}}
    statuses = _statuses(asyncio.run(_parallel(user, [("POST", "/api/n8n/workflow/execute", body)] * 20)))
    assert statuses == [200] * 12 + [429] * 8, statuses
    r = client.post("/api/n8n/workflow/execute", json=body, headers=user.bearer)
    assert r.status_code == 429 and "12 executions per hour" in r.json()["message"]
    # another user is not affected
    other = new_user(client)
    wf2 = create(client, other, {"workflow": GREETING}).json()
    r = client.post("/api/n8n/workflow/execute", json={"workflow_id": wf2["id"], "data": {"name": "Bo"}},
                    headers=other.bearer, timeout=60)  # fmt: skip
    assert r.status_code == 200 and r.json()["data"] == [{"greeting": "Hello, Bo!"}], r.text
