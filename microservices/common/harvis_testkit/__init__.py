"""Helpers for tests: X-Internal-Auth headers a service accepts, throwaway databases, stub
servers (aiohttp apps on a free port) and an event loop in a thread to run them beside a TestClient."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from harvis_common.internal_auth import HEADER, InternalSigner, generate_keypair

if TYPE_CHECKING:
    import httpx
    from aiohttp import web


class InternalAuthKit:
    """A fresh Ed25519 pair plus a signer, for tests that call a service directly."""

    def __init__(self) -> None:
        self.private_key, self.public_key = generate_keypair()
        self.signer = InternalSigner(self.private_key)

    def headers(
        self,
        audience: str,
        user_id: int = 1,
        email: str = "ada@example.com",
        username: str = "ada",
        is_admin: bool = False,
        request_id: str | None = "test-rid",
    ) -> dict[str, str]:
        token = self.signer.sign(
            audience, user_id=user_id, email=email, username=username, is_admin=is_admin, request_id=request_id
        )
        return {HEADER: token}


# ---------------------------------------------------------------- throwaway databases
# Unit tests run against a real PostgreSQL (dev and CI machines have one on 127.0.0.1);
# each test session or module gets a database of its own, dropped afterwards. Needs asyncpg.

T = TypeVar("T")
PG_ADMIN_URL = os.environ.get("HARVIS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def dsn_for(database: str, admin_url: str = PG_ADMIN_URL) -> str:
    """The admin URL pointed at another database."""
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + database))


async def _admin_execute(sql: str, admin_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(prefix: str, admin_url: str = PG_ADMIN_URL) -> tuple[str, str]:
    """A new empty database named `<prefix>_<random>`: (name, DSN)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin_execute(f'CREATE DATABASE "{name}"', admin_url)
    return name, dsn_for(name, admin_url)


async def drop_database(name: str, admin_url: str = PG_ADMIN_URL) -> None:
    await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url)


def run_private(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a loop of its own, never installed as the current one, so
    session fixtures don't disturb pytest-asyncio's loops (asyncio.run would)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def create_database_sync(prefix: str, admin_url: str = PG_ADMIN_URL) -> tuple[str, str]:
    """`create_database` outside an event loop (conftest module level, sync fixtures)."""
    return run_private(create_database(prefix, admin_url))


def drop_database_sync(name: str, admin_url: str = PG_ADMIN_URL) -> None:
    run_private(drop_database(name, admin_url))


class BackgroundLoop:
    """An event loop in a thread, for servers the tests talk to (stubs next to a TestClient,
    which runs the app on a loop of its own)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout_s: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def serve_app(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """An aiohttp app (a stub of a service, a test site) on a free port of `host`:
    (its runner — `await runner.cleanup()` when done — and its base URL). Needs aiohttp."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{port}"


def parse_sse(raw: bytes, *, one_terminal: bool = True) -> tuple[list[dict[str, Any]], int]:
    """(events, heartbeat comments) of a whole SSE body, checking the contract's strict framing:
    `data: <one JSON line>` blocks or `:` comments, every event with a `status`, and (unless
    `one_terminal=False`, for a stream cut off on purpose) exactly one `complete`/`error`, last."""
    import json

    assert raw.endswith(b"\n\n"), raw[-300:]
    events: list[dict[str, Any]] = []
    comments = 0
    for block in raw.split(b"\n\n")[:-1]:
        assert b"\n" not in block, f"an event spans lines: {block!r}"
        if block.startswith(b":"):
            comments += 1
            continue
        assert block.startswith(b"data: "), block
        event = json.loads(block[6:])
        assert "status" in event, event
        events.append(event)
    if one_terminal:
        terminal = [e for e in events if e["status"] in ("complete", "error")]
        assert len(terminal) == 1 and terminal[0] is events[-1], events[-3:]
    return events, comments


@contextlib.asynccontextmanager
async def app_client(
    app: Any,
    base_url: str,
    *,
    timeout: float = 60,  # noqa: ASYNC109 - the httpx client's, not a deadline for this call
    start_timeout: float = 10,
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on an app's ASGI interface, with the app's lifespan running. The lifespan
    starts and ends in one task of its own: anyio's task groups (MCP's, for one) need that, and
    pytest-asyncio runs a fixture's setup and teardown in two different tasks."""
    import httpx

    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    try:
        await asyncio.wait_for(started.wait(), start_timeout)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=timeout) as client:
            yield client
    finally:
        stop.set()
        await task


async def quota_backend(kind: str, redis_url: str, prefix_setting: str, label: str) -> AsyncIterator[dict[str, str]]:
    """Settings for quotas kept in process (`kind` "memory") or in Redis under a fresh key prefix;
    afterwards checks the quotas really reached Redis (no silent in-process fallback) and
    removes their keys. For a fixture parametrised over both backends."""
    if kind == "memory":
        yield {"redis_url": ""}
        return
    from redis import asyncio as aioredis

    prefix = f"harvis:{label}-test:{uuid.uuid4().hex}:"
    yield {"redis_url": redis_url, prefix_setting: prefix}
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "quota:*")]
        assert keys, "the quotas never reached Redis (a silent in-process fallback?)"
        await client.delete(*keys)
    finally:
        await client.aclose()


# ---------------------------------------------------------------- route manifests
# Paths every service serves outside its prefixes: probes, Prometheus' /metrics, FastAPI's own docs, and the
# internal API other services call directly (nginx never routes /internal).
UNPREFIXED = ("/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def served_routes(app: Any) -> list[tuple[str, str]]:
    """(kind, path) for every route of a Starlette/FastAPI app: kind is "http", "websocket"
    or "mount" (an ASGI app under a path, e.g. the MCP endpoint)."""
    from starlette.routing import Mount, WebSocketRoute

    out: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):
                # FastAPI >= 0.16x keeps included routers as such; their candidates carry full paths.
                walk(route.effective_candidates(), prefix)
                continue
            original = getattr(route, "original_route", route)
            # The effective route (with the include's prefix); a WebSocket's lives in starlette_route.
            path = getattr(getattr(route, "starlette_route", None), "path", None) or route.path
            if isinstance(original, Mount):
                sub = getattr(original, "routes", None) or []
                if sub:
                    walk(sub, prefix + original.path)
                else:
                    out.append(("mount", prefix + original.path))
            elif isinstance(original, WebSocketRoute) or "websocket" in type(original).__name__.lower():
                out.append(("websocket", prefix + path))
            else:
                out.append(("http", prefix + path))

    walk(getattr(app, "routes", []), "")
    return out


def manifest_problems(app: Any, manifest: Any) -> list[str]:
    """What an app serves that its manifest doesn't cover, and manifest entries that match
    nothing it serves. `manifest` is a harvis_common.manifest.Manifest."""
    from harvis_common.manifest import template_regex

    routes = served_routes(app)
    problems = [
        f"{kind} {path} is under none of the prefixes {list(manifest.prefixes)}"
        for kind, path in routes
        if path not in UNPREFIXED and not path.startswith("/internal/") and not manifest.owns(path.rstrip("/") or "/")
    ]
    # A route `/a/{id}/b` is checked as the concrete path `/a/x/b`.
    concrete = {(kind, re.sub(r"\{[^}]*\}", "x", path)) for kind, path in routes}
    for template, kind in manifest.long.items():
        pattern = template_regex(template)
        hits = [k for k, path in concrete if pattern.match(path)]
        if not hits:
            problems.append(f"long route {template} matches nothing the service serves")
        elif kind == "websocket" and "websocket" not in hits:
            problems.append(f"{template} is listed as a websocket but isn't one")
    for kind, path in concrete:
        if kind == "websocket" and manifest.long.get(_template_of(path, manifest)) != "websocket":
            problems.append(f"websocket {path} is not listed under [long] as a websocket")
        if path.endswith("/diagnostics/stream") and not manifest.is_long(path):
            problems.append(f"the SSE route {path} is not listed under [long]")
    if manifest.sessions is not None:
        problems += _session_problems(app, routes, manifest.sessions)
    return problems


def _session_problems(app: Any, routes: list[tuple[str, str]], sessions: Any) -> list[str]:
    """[sessions] against the routes: each path template matches a route, and every route
    naming a session (a `{session_id}` segment, a `session_id` query parameter or JSON body
    field) is covered, so the gateway sends it to the session's replica."""
    from harvis_common.manifest import SESSION_PARAM, template_regex

    name = SESSION_PARAM[1:-1]
    problems = []
    patterns = {t: template_regex(t) for t in sessions.paths}
    for template, pattern in patterns.items():
        # The route's own template, or a concrete path under it (a `/**` template).
        if not any(pattern.match(path) or pattern.match(re.sub(r"\{[^}]*\}", "x", path)) for _, path in routes):
            problems.append(f"sessions path {template} matches nothing the service serves")
    for kind, path in sorted(set(routes)):  # a path served for several methods: once
        if SESSION_PARAM in path.split("/") and not any(p.match(path) for p in patterns.values()):
            problems.append(f"{kind} {path} names a session but is under none of the [sessions] paths")
    inputs = _query_and_body_fields(app)
    for field in sessions.fields:
        if field not in inputs:
            problems.append(f"sessions field {field} is no route's query parameter or JSON body field")
    if name in inputs and name not in sessions.fields:
        problems.append(f"a route takes {name} in its query or JSON body, but [sessions] fields doesn't list it")
    return problems


def _query_and_body_fields(app: Any) -> set[str]:
    """Names of the query parameters and top-level JSON body fields of an app's routes (its OpenAPI)."""
    spec = app.openapi()
    schemas = spec.get("components", {}).get("schemas", {})

    def properties(schema: dict[str, Any]) -> set[str]:
        if "$ref" in schema:
            return properties(schemas.get(schema["$ref"].rpartition("/")[2], {}))
        out = set(schema.get("properties", {}))
        for alternative in (*schema.get("anyOf", ()), *schema.get("allOf", ())):
            out |= properties(alternative)
        return out

    names: set[str] = set()
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            names |= {p["name"] for p in operation.get("parameters", ()) if p.get("in") == "query"}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            names |= properties(body.get("schema", {}))
    return names


def _template_of(path: str, manifest: Any) -> str:
    from harvis_common.manifest import template_regex

    return next((t for t in manifest.long if template_regex(t).match(path)), "")
