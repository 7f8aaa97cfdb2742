"""n8n itself is locked down the same way natively (scripts/n8n_server.py) and in compose:
only the node types users may use are loaded, every outbound request goes through this
service's vetting proxy (no NO_PROXY, no stray proxy of the caller's), expressions can't
read the environment, executions end. These are the settings n8n reads; the e2e suite
checks their effect on a real n8n."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from n8n_integration.safety import ALLOWED_NODE_TYPES
from n8n_integration.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def n8n_server() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    import n8n_server

    return n8n_server


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_native_n8n_loads_only_the_allowed_nodes_and_uses_the_proxy(
    n8n_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # would exempt loopback from the proxy
    monkeypatch.setenv("npm_config_proxy", "http://elsewhere:3128")
    monkeypatch.setenv("https_proxy", "http://elsewhere:3128")  # lower case wins in proxy-from-env
    monkeypatch.delenv("N8N_EGRESS_PROXY_PORT", raising=False)
    env = n8n_server.env(5678)
    assert json.loads(env["NODES_INCLUDE"]) == sorted(ALLOWED_NODE_TYPES)
    proxy = f"http://127.0.0.1:{Settings.model_fields['n8n_egress_proxy_port'].default}"
    assert all(env[v] == proxy for v in PROXY_VARS)
    assert not {k for k in env if k.lower() in ("no_proxy", "npm_config_proxy", "npm_config_no_proxy")}
    assert env["N8N_BLOCK_ENV_ACCESS_IN_NODE"] == "true" and env["N8N_COMMUNITY_PACKAGES_ENABLED"] == "false"
    assert int(env["EXECUTIONS_TIMEOUT"]) > 0
    monkeypatch.setenv("N8N_EGRESS_PROXY_PORT", "6001")  # the service's setting moves both
    assert n8n_server.env(5678)["HTTPS_PROXY"] == "http://127.0.0.1:6001"


def test_compose_n8n_loads_only_the_allowed_nodes_and_uses_the_proxy(compose: dict[str, Any]) -> None:
    n8n = compose["services"]["n8n"]
    env = n8n["environment"]
    assert json.loads(env["NODES_INCLUDE"]) == sorted(ALLOWED_NODE_TYPES)
    default = Settings.model_fields["n8n_egress_proxy_port"].default
    assert all(env[v] == f"http://n8n-integration:${{N8N_EGRESS_PROXY_PORT:-{default}}}" for v in PROXY_VARS)
    assert not {k for k in env if k.lower() == "no_proxy"}
    assert env["N8N_BLOCK_ENV_ACCESS_IN_NODE"] == "true" and env["N8N_COMMUNITY_PACKAGES_ENABLED"] == "false"
    assert env["EXECUTIONS_TIMEOUT"] == "120"
    # No password of ours and no database of ours: n8n keeps SQLite in its own volume.
    assert env["DB_TYPE"] == "sqlite" and not any("POSTGRES" in str(v) for v in env.values())


def test_compose_n8n_reaches_nothing_but_n8n_integration(compose: dict[str, Any]) -> None:
    services, networks = compose["services"], compose["networks"]
    n8n_nets = set(services["n8n"]["networks"])
    assert n8n_nets == {"n8n-sandbox"} and networks["n8n-sandbox"]["internal"] is True
    on_sandbox = {name for name, s in services.items() if "n8n-sandbox" in (s.get("networks") or [])}
    assert on_sandbox == {"n8n", "n8n-integration"}
    integration = services["n8n-integration"]["environment"]
    assert integration["N8N_EGRESS_PROXY_HOST"] == "0.0.0.0"  # n8n connects from another container
    assert "depends_on" not in services["n8n"] or "postgres" not in services["n8n"]["depends_on"]
