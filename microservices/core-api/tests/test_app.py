"""The served app as `core_api.main` builds it (no lifespan: no database): the gateway in
front of core-api's FastAPI app, every route of core-api's own under a prefix of its
manifest.toml (what nginx and the README say it serves), FastAPI's own docs off."""

from __future__ import annotations

from pathlib import Path

from conftest import make_settings
from fastapi import FastAPI

from core_api.app import create_app
from core_api.gateway import Gateway
from harvis_common.manifest import MANIFEST_FILE, load
from harvis_testkit import manifest_problems, served_routes

MANIFEST = Path(__file__).resolve().parents[1] / MANIFEST_FILE


def test_the_gateway_wraps_core_apis_own_app() -> None:
    app = create_app(make_settings())
    assert isinstance(app, Gateway) and isinstance(app.api, FastAPI)
    paths = {path for _, path in served_routes(app.api)}
    assert {"/api/openapi.json", "/api/docs", "/api/health", "/internal/token"} <= paths
    assert not {"/openapi.json", "/docs", "/redoc"} & paths  # the fleet's document replaces them


def test_every_route_falls_under_the_manifest() -> None:
    manifest = load(MANIFEST)
    assert manifest.service == "core-api"
    assert manifest_problems(create_app(make_settings()).api, manifest) == []


def test_the_internal_api_is_what_the_services_call() -> None:
    # harvis_common.core_client: history exchange, a session's recent messages, token exchange,
    # audit reports.
    internal = sorted(p for _, p in served_routes(create_app(make_settings()).api) if p.startswith("/internal/"))
    assert internal == [
        "/internal/audit",
        "/internal/history/exchange",
        "/internal/history/sessions/{session_id}/messages",
        "/internal/token",
    ]
