"""docs/contract.md is kept true: every route its tables name is served through :9000, as the
fleet's own merged OpenAPI document (/api/openapi.json, built from the services) says."""

from __future__ import annotations

import re

import httpx
from conftest import ROOT

ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE) `(/api/[^`?]*)`")


def template(path: str) -> str:
    """`/api/audio/{file}` and `/api/audio/{filename}` are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def contract_routes() -> set[tuple[str, str]]:
    routes = set()
    for line in (ROOT / "docs" / "contract.md").read_text().splitlines():
        if m := ROW.match(line):
            routes.add((m.group(1).lower(), template(m.group(2))))
    return routes


def test_every_route_of_the_contract_is_served(client: httpx.Client) -> None:
    doc = client.get("/api/openapi.json").json()
    served = {(method, template(path)) for path, item in doc["paths"].items() for method in item}
    wanted = contract_routes()
    assert len(wanted) >= 30, wanted  # the tables were read
    # The document doesn't list itself nor its viewer: those are checked by calling them.
    for path in ("/api/openapi.json", "/api/docs"):
        assert client.get(path).status_code == 200, path
        served.add(("get", path))
    missing = sorted(wanted - served)
    assert not missing, f"docs/contract.md names routes the fleet doesn't serve: {missing}"
