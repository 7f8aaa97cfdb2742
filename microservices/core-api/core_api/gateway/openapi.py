"""One OpenAPI document for the whole fleet: `/api/openapi.json`, shown by `/api/docs`.

core-api's own routes, plus every service's routes as the service itself describes them
(its FastAPI `/openapi.json`, fetched through the gateway's upstream pool with a signed
header). Only the paths the gateway really routes to that service are kept, so the
document lists exactly what a client can call through :9000 (and a fuzzer can be pointed
at it). Schemas two services name alike but define differently are renamed
`<Service>_<Name>` in the second one, with its `$ref`s rewritten.

Services that don't answer are left out for a few seconds and named in the description;
a complete document is cached for a minute (schemas only change with a deploy).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from harvis_common.internal_auth import HEADER

from .upstream import UpstreamError

if TYPE_CHECKING:
    from .proxy import Gateway
    from .routes import RouteTable

log = logging.getLogger("core_api.gateway")

FETCH_TIMEOUT_S = 3.0
CACHE_S = 60.0
RETRY_INCOMPLETE_S = 5.0
SCHEMA_PREFIX = "#/components/schemas/"
# Who the gateway says it is when it asks a service for its schema: no user (services'
# `/openapi.json` reads no identity; every other route of theirs would see user 0 and own nothing).
READER = {"user_id": 0, "email": "openapi@gateway.harvis.internal", "username": "gateway-openapi"}


def _camel(service: str) -> str:
    return "".join(part.capitalize() for part in service.split("-"))


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_PREFIX):
                name = value[len(SCHEMA_PREFIX) :]
                out[key] = SCHEMA_PREFIX + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def merge(base: dict[str, Any], services: dict[str, dict[str, Any]], routes: RouteTable) -> dict[str, Any]:
    """`base` (core-api's document) plus each service's routed paths and their schemas."""
    doc = copy.deepcopy(base)
    # nginx sends only /api/* and /health to core-api: its /ready and /internal/* aren't public.
    doc["paths"] = {p: item for p, item in doc.get("paths", {}).items() if p.startswith("/api/") or p == "/health"}
    paths: dict[str, Any] = doc["paths"]
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    tags: list[dict[str, Any]] = doc.setdefault("tags", [])
    for service, spec in sorted(services.items()):
        theirs: dict[str, Any] = spec.get("components", {}).get("schemas", {})
        renames = {
            name: f"{_camel(service)}_{name}" for name, schema in theirs.items() if schemas.get(name, schema) != schema
        }
        theirs = _rewrite_refs(theirs, renames)
        for name, schema in theirs.items():
            schemas[renames.get(name, name)] = schema
        for path, item in _rewrite_refs(spec.get("paths", {}), renames).items():
            route = routes.match(path)
            if route is None or route.service != service or path in paths:
                continue  # not reachable through the gateway (e.g. /health), or not theirs
            for operation in item.values():
                if isinstance(operation, dict):
                    operation["tags"] = [service]
            paths[path] = item
        tags.append({"name": service, "description": spec.get("info", {}).get("description", "")})
    return doc


class FleetOpenAPI:
    """The merged document, cached; concurrent callers share one build."""

    def __init__(self, api: FastAPI, gateway: Gateway) -> None:
        self.api = api
        self.gateway = gateway
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._building: asyncio.Future[dict[str, Any]] | None = None

    async def document(self) -> dict[str, Any]:
        if self._cached is not None and time.monotonic() < self._cached[0]:
            return self._cached[1]
        if self._building is None:
            self._building = asyncio.ensure_future(self._build())
            self._building.add_done_callback(lambda _: setattr(self, "_building", None))
        return await asyncio.shield(self._building)

    async def _build(self) -> dict[str, Any]:
        names = self.gateway.routes.services()
        fetched = await asyncio.gather(*(self._fetch(name) for name in names))
        specs = {name: spec for name, spec in zip(names, fetched, strict=True) if spec is not None}
        doc = merge(self.api.openapi(), specs, self.gateway.routes)
        doc["info"] = {**doc["info"], "title": "Harvis API (every service, through the gateway)"}
        missing = sorted(set(names) - set(specs))
        if missing:
            doc["info"]["description"] = (
                doc["info"].get("description", "") + f"\n\nNot reachable just now, so not listed: {', '.join(missing)}."
            )
        self._cached = (time.monotonic() + (RETRY_INCOMPLETE_S if missing else CACHE_S), doc)
        return doc

    async def _fetch(self, service: str) -> dict[str, Any] | None:
        replicas = self.gateway.replicas.get(service)  # any replica: they serve the same schema
        signer = self.gateway.signer
        if replicas is None or signer is None:
            return None
        token = signer.sign(service, **READER)
        try:
            status, body = await asyncio.wait_for(
                replicas.fetch("GET", "/openapi.json", FETCH_TIMEOUT_S, headers={HEADER: token}), FETCH_TIMEOUT_S
            )
            if status != 200:
                raise UpstreamError(f"/openapi.json answered {status}")
            spec = orjson.loads(body)
        except (UpstreamError, TimeoutError, orjson.JSONDecodeError) as exc:
            log.warning("openapi of a service not available", extra={"service": service, "error": str(exc)})
            return None
        return spec if isinstance(spec, dict) else None


def openapi_router(fleet: FleetOpenAPI) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/api/openapi.json")
    async def openapi_json() -> JSONResponse:
        return JSONResponse(await fleet.document())

    @router.get("/api/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Harvis API")

    return router
