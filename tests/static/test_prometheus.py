"""deploy/prometheus and deploy/grafana: Prometheus scrapes every service of the fleet (compose
and native), its config and rules are valid (`promtool`, Debian's `prometheus` package, which
`fleet.py test static` installs), the alert rules fire as alerts_test.yml says (a killed
service, a 5xx ratio, slow requests…), and every metric the rules and the dashboard use is
one the services really define."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from fleet_services import SERVICES
from harvis_static import MICRO, ROOT, tool

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


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_service_is_scraped_on_its_own_port(name: str) -> None:
    config = yaml.safe_load((PROM / name).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {svc.name for svc in SERVICES}
    for svc in SERVICES:
        (targets,) = [c["targets"] for c in jobs[svc.name]["static_configs"]]
        host = svc.name if CONFIGS[name] == "compose" else "127.0.0.1"
        assert targets == [f"{host}:{svc.port}"], (name, svc.name)
        assert jobs[svc.name].get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]


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
