"""Observability end to end: every service serves Prometheus metrics on its own port and
never through nginx :9000; one chat request is one trace across nginx → core-api → the model
call, and a research chat one across core-api's gateway → research-service → the model,
its fetches and core-api's internal history API, with correct parent links (spans sent over
OTLP/HTTP to tests/fakes/otlp_receiver.py); the logs carry the trace ids."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import FAKES, ROOT, FakeOllamaProcess, Fleet, User, free_port, http_up, new_user, wait_for
from fleet_services import SERVICES

from harvis_testkit import parse_sse  # on the path from conftest

PROM = "text/plain"


def metrics(port: int) -> str:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200, (port, r.status_code)
    assert r.headers["content-type"].startswith(PROM)
    return r.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels…}` (labels a subset of the sample's), summed; 0 when absent."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, number = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(number)
    return total


# ---------------------------------------------------------------- metrics


def test_every_service_serves_metrics_on_its_own_port(client: httpx.Client, user: User) -> None:
    client.get("/api/auth/me", headers=user.bearer)
    client.get("/api/research/diagnostics/whoami", headers=user.bearer)
    for svc in SERVICES:
        text = metrics(svc.port)
        assert "harvis_http_requests_in_flight" in text, svc.name
        assert "# TYPE harvis_http_requests_total counter" in text, svc.name
    core = metrics(8000)
    assert value(core, "harvis_http_requests_total", route="/api/auth/me", method="GET", status="2xx") >= 1
    assert value(core, "harvis_gateway_requests_total", upstream="research-service", status="2xx") >= 1
    assert "harvis_auth_logins_total" in core and "harvis_gateway_upstream_connect_failures_total" in core
    research = metrics(8001)
    assert value(research, "harvis_http_requests_total", route="/api/research/diagnostics/whoami") >= 1
    assert "/api/auth/me" not in research


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/metrics/",
        "/api/metrics",
        "/api/metrics/",
        "/api/research/metrics",
        "/api/vibe/metrics",
        "/api/../metrics",
        "/api/%2e%2e/metrics",
        "/health/../metrics",
        "//metrics",
    ],
)
def test_public_port_never_exposes_metrics(client: httpx.Client, user: User, path: str) -> None:
    for headers in ({}, user.bearer):
        r = client.get(path, headers=headers)
        assert r.status_code in (400, 401, 404, 502), (path, r.status_code)
        assert "# TYPE" not in r.text and "harvis_http_requests" not in r.text, path


# ---------------------------------------------------------------- traces


def chat(client: httpx.Client, user: User, body: dict[str, Any], path: str = "/api/chat", **headers: str) -> Any:
    with client.stream("POST", path, json=body, headers={**user.bearer, **headers}, timeout=240) as r:
        assert r.status_code == 200, r.read()
        events = parse_sse(r.read())[0]
    assert events[-1]["status"] == "complete", events[-1]
    return events


class Receiver:
    def __init__(self, fleet_proc: Fleet) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        python = fleet_proc.prep.venvs["core-api"] / "bin" / "python"  # has opentelemetry-proto
        log = fleet_proc.log_path("otlp-receiver").open("ab")
        self.proc = subprocess.Popen(
            [str(python), str(FAKES / "otlp_receiver.py"), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert wait_for(lambda: http_up(self.url + "/health"), 15), "the OTLP receiver did not start"

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        return [s for s in httpx.get(self.url + "/spans", timeout=5).json() if s["trace_id"] == trace_id]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


TRACED = ("core-api", "research-service")
MODEL = "fake-llama:latest"


@pytest.fixture(scope="module")
def traced(fleet_proc: Fleet) -> Iterator[Receiver]:
    """core-api and research-service restarted exporting spans to the receiver (batches every
    100 ms) and answering with the fake Ollama (deterministic, and the model call is still a
    real HTTP hop); restored afterwards."""
    rx = Receiver(fleet_proc)
    with FakeOllamaProcess(fleet_proc, "fake-ollama-observability") as llm:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "LLM_PROVIDER": "ollama",
            "OLLAMA_URL": llm.url,
            "DEFAULT_MODEL": MODEL,
            "CHAT_MAX_TOKENS": "0",
        }
        try:
            for name in TRACED:
                fleet_proc.restart(name, env)
            yield rx
        finally:
            for name in TRACED:
                fleet_proc.restart(name)
            rx.stop()


def wait_spans(rx: Receiver, trace_id: str, done: Any, timeout: float = 15) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []

    def ready() -> bool:
        nonlocal spans
        spans = rx.spans(trace_id)
        return bool(done(spans))

    wait_for(ready, timeout, 0.2)
    return spans


def one(spans: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [s for s in spans if all(s.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s["service"], s["name"], s["kind"]) for s in spans])
    return found[0]


def log_lines(fleet_proc: Fleet, name: str, trace_id: str) -> list[dict[str, Any]]:
    out = []
    for line in fleet_proc.log_path(name).read_text().splitlines():
        if trace_id in line and line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_one_chat_request_is_one_trace(client: httpx.Client, fleet_proc: Fleet, traced: Receiver) -> None:
    user = new_user(client)
    trace_id, caller_span = "5b8aa5a2d2c872e8321cf37308d69df2", "051581bf3cb55c13"
    chat(client, user, {"message": "Say hi", "history": []}, traceparent=f"00-{trace_id}-{caller_span}-01")

    def complete(spans: list[dict[str, Any]]) -> bool:
        return any(s["kind"] == "server" for s in spans) and any(s["name"].startswith("llm ") for s in spans)

    spans = wait_spans(traced, trace_id, complete)
    server = one(spans, service="core-api", kind="server", parent_span_id=caller_span)
    assert server["name"] == "POST /api/chat" and server["attributes"]["http.route"] == "/api/chat"
    (model,) = [s for s in spans if s["kind"] == "client" and s["name"].startswith("llm POST")]
    assert model["service"] == "core-api" and model["parent_span_id"] == server["span_id"]
    assert server["start_ns"] <= model["start_ns"] and model["end_ns"] <= server["end_ns"]
    # The logs of that request carry its trace id and core-api's span id.
    lines = log_lines(fleet_proc, "core-api", trace_id)
    assert any(x.get("msg") == "request" and x.get("span_id") == server["span_id"] for x in lines), lines[-3:]


def test_a_research_chat_is_one_trace_across_the_gateway_and_the_service(
    client: httpx.Client, fleet_proc: Fleet, traced: Receiver, research_web: None
) -> None:
    user = new_user(client)
    trace_id, caller_span = "0e2f0a7c4d6b4e1f9a3b5c7d9e1f2a3b", "1a2b3c4d5e6f7a8b"
    body = {"message": "When did Apollo 11 land on the Moon?", "history": [], "enableWebSearch": True}
    chat(client, user, body, "/api/research-chat", traceparent=f"00-{trace_id}-{caller_span}-01")

    def complete(spans: list[dict[str, Any]]) -> bool:
        # Each service exports a span when it ends, in its own batch: the servers' spans end after
        # the stream's last byte, so the client can hold the whole answer before they arrive.
        servers = {s["service"] for s in spans if s["kind"] == "server" and s["name"] == "POST /api/research-chat"}
        internal = [s for s in spans if s["service"] == "core-api" and "/internal/" in s["name"]]
        return servers >= set(TRACED) and bool(internal) and any(s["name"].startswith("llm ") for s in spans)

    spans = wait_spans(traced, trace_id, complete, 30)
    gateway = one(spans, service="core-api", kind="server", parent_span_id=caller_span)
    assert gateway["name"] == "POST /api/research-chat"
    assert gateway["attributes"]["harvis.upstream"] == "research-service"
    research = one(spans, service="research-service", kind="server", parent_span_id=gateway["span_id"])
    assert research["name"] == "POST /api/research-chat"
    below = [s for s in spans if s["parent_span_id"] == research["span_id"]]
    assert any(s["name"].startswith("llm ") for s in below), below
    assert any(s["name"].startswith("fetch ") for s in below), below  # the pages it read
    internal = [s for s in spans if s["service"] == "core-api" and "/internal/" in s["name"]]
    assert internal and all(s["parent_span_id"] == research["span_id"] for s in internal)  # the history write
    ids = {s["span_id"] for s in spans} | {caller_span}
    assert all(s["parent_span_id"] in ids for s in spans)  # no span hangs off an unknown parent
    assert any(x.get("trace_id") == trace_id for x in log_lines(fleet_proc, "research-service", trace_id))


def test_chat_counts_turns_tokens_and_first_token_per_model(client: httpx.Client, traced: Receiver) -> None:
    user = new_user(client)
    before = value(metrics(8000), "harvis_chat_turns_total", outcome="complete")
    chat(client, user, {"message": "Hello there", "history": []})
    text = metrics(8000)
    assert value(text, "harvis_chat_turns_total", outcome="complete", model=MODEL) == before + 1
    assert value(text, "harvis_chat_time_to_first_token_seconds_count", model=MODEL) >= 1
    assert value(text, "harvis_chat_tokens_total", kind="completion", model=MODEL) >= 1


# ---------------------------------------------------------------- Prometheus over the fleet

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DEPLOY = ROOT / "deploy"
SHORT_PANELS = (  # dashboard panels that have data once the tests above ran
    "Services up",
    "Requests / s by service",
    "Requests in flight",
    "Proxied requests / s by upstream and status",
    "Gateway p95 latency by upstream",
    "Open streams (SSE, WebSocket)",
    "Logins by outcome",
    "Time to first token (p50, p95) by model",
    "Tokens / s by model",
    "Chat turns by outcome",
)


class Prometheus:
    """Debian's prometheus with deploy/prometheus/prometheus.native.yml and alerts.yml, scraping
    every second (the scrape targets and rules as shipped)."""

    def __init__(self, fleet_proc: Fleet, workdir: Path) -> None:
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.native.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        shutil.copy(DEPLOY / "prometheus" / "alerts.yml", workdir / "alerts.yml")
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        log = fleet_proc.log_path("prometheus").open("ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
        assert wait_for(lambda: http_up(self.url + "/-/ready"), 30), "prometheus did not start"

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def up(self) -> dict[str, float]:
        return {s["metric"]["job"]: float(s["value"][1]) for s in self.query("up")}

    def alerts(self) -> list[dict[str, Any]]:
        return httpx.get(self.url + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_prometheus_scrapes_the_fleet_and_sees_a_killed_service(
    client: httpx.Client, fleet_proc: Fleet, traced: Receiver, tmp_path: Path
) -> None:
    prom = Prometheus(fleet_proc, tmp_path)
    try:
        jobs = {svc.name for svc in SERVICES}
        assert wait_for(lambda: prom.up() == dict.fromkeys(jobs, 1.0), 30), prom.up()
        # Some traffic of each kind the dashboard shows, then a few scrapes.
        user = new_user(client)
        client.get("/api/research/diagnostics/whoami", headers=user.bearer)
        chat(client, user, {"message": "Dashboard, please", "history": []})
        time.sleep(4)
        board = json.loads((DEPLOY / "grafana" / "harvis-fleet.json").read_text())
        empty = []
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if not prom.query(target["expr"]) and panel["title"] in SHORT_PANELS:
                    empty.append(panel["title"])
        assert not empty, f"dashboard panels without data: {empty}"
        # A killed service: its scrape fails at once, and HarvisServiceDown is pending (it fires
        # after its `for: 1m`, which alerts_test.yml checks with promtool).
        fleet_proc.stop("mcp-service")
        try:
            assert wait_for(lambda: prom.up().get("mcp-service") == 0.0, 15), prom.up()

            def pending() -> bool:
                return any(
                    a["labels"]["alertname"] == "HarvisServiceDown" and a["labels"]["job"] == "mcp-service"
                    for a in prom.alerts()
                )

            assert wait_for(pending, 15), prom.alerts()
        finally:
            fleet_proc.restart("mcp-service")
        assert wait_for(lambda: prom.up().get("mcp-service") == 1.0, 15), prom.up()
    finally:
        prom.stop()


# ---------------------------------------------------------------- the audit trail


def test_the_audit_trail_shows_which_service_acted_for_the_user(client: httpx.Client, admin: User) -> None:
    user = new_user(client)
    me = client.get("/api/auth/me", headers=user.bearer).json()["id"]
    r = client.post("/api/vibe/session/create", json={"name": "audit", "language": "python"}, headers=user.bearer)
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    body = {"session_id": sid, "code": "print('s3cret output')"}
    r = client.post("/api/vibe/execute", json=body, headers=user.bearer, timeout=60)
    assert r.status_code == 200, r.text
    assert client.get("/api/admin/audit", headers=user.bearer).status_code == 403  # administrators only

    def events() -> list[dict[str, Any]]:
        r = client.get("/api/admin/audit", params={"user": me}, headers=admin.bearer)
        assert r.status_code == 200, r.text
        return r.json()["events"]

    def complete() -> bool:
        return {"request", "sandbox_run"} <= {e["action"] for e in events()}

    assert wait_for(complete, 15), events()
    got = events()
    assert all(e["user_id"] == me for e in got)
    hops = [e for e in got if e["action"] == "request"]
    assert {"POST /api/vibe/session/create", "POST /api/vibe/execute"} <= {e["target"] for e in hops}
    assert all(e["service"] == "vibe-coding" and e["outcome"] == "200" and e["request_id"] for e in hops)
    (run,) = [e for e in got if e["action"] == "sandbox_run"]
    assert run["service"] == "vibe-coding" and run["outcome"] == "completed" and sid in run["target"]
    assert "s3cret" not in json.dumps(got)  # no code, no output
