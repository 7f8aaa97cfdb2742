"""deploy/prometheus and deploy/grafana: Prometheus scrapes every service of the fleet (compose
and native; compose's artifact-renderer too) and alerts when one is down, its config and rules
are valid (`promtool`, Debian's `prometheus` package, which `fleet.py test static` installs),
the alert rules fire as alerts_test.yml says (a killed service, a 5xx ratio, slow requests…),
and every metric the rules and the dashboard use is one the services really define."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from fleet_services import SERVICES
from harvis_static import MICRO, ROOT, compose, health_urls, healthcheck_text, tool

PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "harvis-fleet.json"
CONFIGS = {"prometheus.yml": "compose", "prometheus.native.yml": "native"}


def promtool(*args: str) -> str:
    done = subprocess.run([tool("promtool"), *args], cwd=PROM, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_is_valid(name: str) -> None:
    promtool("check", "config", name)


def compose_apps() -> dict[str, int]:
    """Every app container compose runs (the images it builds: the fleet's services and the
    artifact-renderer, which only compose runs) -> the port its healthcheck uses."""
    out = {}
    for name, service in compose()["services"].items():
        if str(service.get("image", "")).startswith("harvis/"):
            ((port, _),) = health_urls(healthcheck_text(service))
            out[name] = port
    return out


def scraped(name: str) -> dict[str, int]:
    """What a config must scrape: all compose runs, or the fleet `make dev` runs (no renderer)."""
    if CONFIGS[name] == "compose":
        return compose_apps()
    return {svc.name: svc.port for svc in SERVICES}


def test_compose_apps_are_the_fleet_and_the_renderer() -> None:
    assert compose_apps() == {svc.name: svc.port for svc in SERVICES} | {"artifact-renderer": 8007}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_service_is_scraped_on_its_own_port(name: str) -> None:
    config = yaml.safe_load((PROM / name).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(scraped(name))
    for job, port in scraped(name).items():
        (targets,) = [c["targets"] for c in jobs[job]["static_configs"]]
        host = job if CONFIGS[name] == "compose" else "127.0.0.1"
        assert targets == [f"{host}:{port}"], (name, job)
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]


def test_every_scraped_job_has_a_down_alert() -> None:
    """HarvisServiceDown names each job the configs scrape (a renderer that is gone leaves
    artifacts `generating`: that must alert too)."""
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    (expr,) = [r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "HarvisServiceDown"]
    (pattern,) = re.findall(r'up\{job=~"([^"]+)"\}', expr)
    for name in CONFIGS:
        for job in scraped(name):
            assert re.fullmatch(pattern, job), job


def test_alert_rules_fire_as_tested() -> None:
    promtool("check", "rules", "alerts.yml")
    out = promtool("test", "rules", "alerts_test.yml")
    assert "SUCCESS" in out


def test_every_alert_is_tested() -> None:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])}
    untested = sorted(alerts - tested - {"HarvisAuditEventsDropped"})  # a counter going up: trivial
    assert not untested, f"alerts_test.yml has no case for {untested}"


def defined_metrics() -> set[str]:
    """Metric names the services define with prometheus_client (Counter/Gauge/Histogram or a
    collector's *MetricFamily), as exposed: counters get `_total`, histograms their series."""
    names: set[str] = set()
    pattern = re.compile(r'(Counter|Gauge|Histogram|CounterMetricFamily|GaugeMetricFamily)\(\s*"(harvis_[a-z0-9_]+)"')
    for path in MICRO.glob("*/**/*.py"):
        if "/tests/" in str(path) or "contract_tests" in str(path):
            continue
        for kind, name in pattern.findall(path.read_text()):
            if kind.startswith("Counter"):
                names.add(name.removesuffix("_total") + "_total")
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            else:
                names.add(name)
    return names


def used_metrics(text: str) -> set[str]:
    return set(re.findall(r"\b(harvis_[a-z0-9_]+)", text))


def test_rules_and_dashboard_use_only_real_metrics() -> None:
    defined = defined_metrics()
    assert "harvis_http_requests_total" in defined and "harvis_gateway_open_streams" in defined
    for path in (PROM / "alerts.yml", DASHBOARD):
        unknown = sorted(used_metrics(path.read_text()) - defined)
        assert not unknown, f"{path.relative_to(ROOT)} uses {unknown}, which no service defines"


def test_dashboard_is_grafana_json_over_the_fleet() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 30
    panels = [p for p in board["panels"] if p.get("type") != "row"]
    assert len(panels) >= 8
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needed in ("up{", "harvis_gateway_requests_total", "harvis_chat_time_to_first_token_seconds_bucket"):
        assert needed in exprs, needed


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query as a recording rule: `promtool check rules` parses it."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool("check", "rules", str(path))


def test_metrics_never_reach_nginx() -> None:
    """nginx routes only /api/, /health and the front end: no location for /metrics (the e2e
    test test_observability.py checks :9000 answers none of it)."""
    template = (ROOT / "nginx" / "harvis.conf.template").read_text()
    assert "metrics" not in template
    assert Path(PROM / "prometheus.yml").exists()
