"""While n8n is not ready, users get a 503 that says so — never a 404 that looks like their
workflow is gone, nor a 502.

Three moments seen under `make dev`: n8n still being installed (the native runner's stand-in
server answers 503 + its progress, scripts/preparing.py), and n8n starting up, when its HTTP
server answers before its public API is registered: Express's HTML `Cannot POST
/api/v1/workflows` 404, and, a moment later, a 200 whose body is the text `n8n is starting up.
Please wait` (a create then answered 500 when that text was read as the new workflow). A real
404 of n8n's public API is JSON (`{"message": "Not Found"}`) and stays a 404.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from harvis_testkit import serve_app
from n8n_integration.n8n_client import N8nClient, N8nError

STARTING_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n</head>\n'
    "<body>\n<pre>Cannot POST /api/v1/workflows</pre>\n</body>\n</html>\n"
)
PROGRESS = "n8n is still being installed: 40%, about 5 minutes left"


async def installing(_: web.Request) -> web.Response:
    body = {"detail": PROGRESS, "message": PROGRESS, "error": {"message": PROGRESS}}
    return web.json_response(body, status=503, headers={"Retry-After": "30"})


async def starting(_: web.Request) -> web.Response:
    return web.Response(text=STARTING_PAGE, status=404, content_type="text/html")


async def starting_up(_: web.Request) -> web.Response:
    return web.Response(text="n8n is starting up. Please wait", status=200, content_type="text/html")


async def missing(_: web.Request) -> web.Response:
    return web.json_response({"message": "Not Found"}, status=404)


async def serve(handler: Any) -> Any:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return await serve_app(app)


@pytest.mark.parametrize(
    ("handler", "status", "needle"),
    [
        (installing, 503, PROGRESS),
        (starting, 503, "n8n is starting"),
        (starting_up, 503, "n8n is starting"),
        (missing, 404, "Not Found"),
    ],
    ids=["installing", "starting", "starting-up-200", "really-missing"],
)
async def test_not_ready_is_503_with_the_reason(handler: Any, status: int, needle: str) -> None:
    runner, url = await serve(handler)
    client = N8nClient(url, "a-key")
    try:
        with pytest.raises(N8nError) as err:
            await client.create_workflow({"name": "w", "nodes": [], "connections": {}})
        assert err.value.status == status
        assert needle in err.value.message
        assert "<html" not in err.value.message
    finally:
        await client.close()
        await runner.cleanup()


async def test_key_provisioning_while_installing_says_so() -> None:
    runner, url = await serve(installing)
    client = N8nClient(url, "", owner_email="o@x", owner_password="Hv1-owner-password")
    try:
        with pytest.raises(N8nError) as err:
            await client.list_workflows()
        assert err.value.status == 503 and PROGRESS in err.value.message
    finally:
        await client.close()
        await runner.cleanup()
