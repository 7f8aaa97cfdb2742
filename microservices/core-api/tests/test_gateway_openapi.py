"""One OpenAPI document for the fleet at /api/openapi.json (Swagger UI at /api/docs): core-api's
routes plus each service's own description of its routes, only the paths the gateway routes to
it, schemas that clash renamed; services that don't answer are named, not guessed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
from gateway_support import Fleet

from core_api.gateway.openapi import merge
from core_api.gateway.routes import CHECKOUT_MANIFESTS, SERVICES, RouteTable
from harvis_common.manifest import load_dir


async def test_the_document_lists_every_reachable_service(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        r = await client.get("/api/openapi.json")  # public, like core-api's own was
    assert r.status_code == 200, r.text
    doc = r.json()
    paths = doc["paths"]
    assert "/api/local" in paths  # core-api's own
    # the research app's routes (the shared skeleton's diagnostics), as it describes them
    assert "/api/research/diagnostics/whoami" in paths
    assert paths["/api/research/diagnostics/whoami"]["get"]["tags"] == ["research-service"]
    # the voice stand-in's routes
    assert {"/api/stt/upload", "/api/tts/headers"} <= set(paths)
    # nothing a client can't reach through the gateway: services' probes stay out
    assert "/health" not in paths and "/ready" not in paths
    for path in paths:
        assert path.startswith("/api/"), path
    # schemas the services' operations refer to are all there
    refs = {ref for ref in _refs(doc["paths"])}
    assert refs and refs <= {"#/components/schemas/" + name for name in doc["components"]["schemas"]}
    # down or not speaking HTTP: named, not guessed
    for name in ("mcp-service", "n8n-integration", "browser-service"):
        assert name in doc["info"]["description"]


async def test_concurrent_callers_share_one_build(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        answers = await asyncio.gather(*(client.get("/api/openapi.json") for _ in range(10)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1


async def test_swagger_ui_reads_the_fleet_document(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        r = await client.get("/api/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/api/openapi.json" in r.text


def test_clashing_schemas_are_renamed_with_their_refs() -> None:
    own = {"/api/auth/login": _op("Login"), "/ready": _op("Login"), "/internal/token": _op("Login")}
    base = _doc(own, {"Login": {"type": "object"}, "Shared": {"type": "string"}})
    query = {"type": "object", "properties": {"q": {"$ref": "#/components/schemas/Shared"}}}
    research = _doc(
        {"/api/web-search": _op("Query"), "/health": _op("Shared"), "/api/mcp/tools": _op("Query")},
        {"Query": query, "Shared": {"type": "integer"}},
    )
    doc = merge(base, {"research-service": research}, RouteTable.from_manifests(load_dir(CHECKOUT_MANIFESTS, SERVICES)))
    schemas = doc["components"]["schemas"]
    assert schemas["Shared"] == {"type": "string"}  # core-api's keeps its name
    assert schemas["ResearchService_Shared"] == {"type": "integer"}
    assert schemas["Query"]["properties"]["q"] == {"$ref": "#/components/schemas/ResearchService_Shared"}
    # /health and mcp's path aren't research's; core-api's /ready and /internal aren't public
    assert set(doc["paths"]) == {"/api/auth/login", "/api/web-search"}


def _op(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"post": {"requestBody": {"content": {"application/json": {"schema": ref}}}, "responses": {}}}


def _doc(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas}}  # fmt: skip


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
