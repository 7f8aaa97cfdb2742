"""A FAKE OpenAI-compatible server for tests: the real wire format (`GET /v1/models`,
`POST /v1/chat/completions` streamed as SSE `data:` events ending in `[DONE]`, OpenAI's
`{"error": {...}}` bodies), canned answers. It is not a model.

It knows a set of API keys, each with the models it may see, and records every request's
path and `Authorization` header (`seen`), so tests can tell whose key reached it. A request
with an unknown key gets OpenAI's 401 `invalid_api_key`, which echoes the key it was given
(OpenAI masks it; the fake doesn't, the worst case for keeping keys out of logs).
The answer to a chat is `Echo from <model>: <last user message>`. `redirect_to` makes every
route answer 307 to that URL (for the SSRF redirect tests).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from aiohttp import web


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class FakeOpenAI:
    def __init__(self, keys: dict[str, list[str]], *, host: str = "127.0.0.1") -> None:
        self.keys = keys  # API key -> the models it sees
        self.host = host
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization)
        self.bodies: list[dict[str, Any]] = []
        self.redirect_to: str | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def auths(self, path: str | None = None) -> list[str | None]:
        return [auth for p, auth in self.seen if path is None or p == path]

    def _key(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        self.seen.append((request.path, request.headers.get("Authorization")))
        if self.redirect_to is not None:
            return None, web.Response(status=307, headers={"Location": self.redirect_to + request.path_qs})
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if key not in self.keys:
            error = {"message": f"Incorrect API key provided: {key}. You can find your API key at "
                     "https://platform.openai.com/account/api-keys.", "type": "invalid_request_error",
                     "param": None, "code": "invalid_api_key"}  # fmt: skip
            return None, web.json_response({"error": error}, status=401)
        return key, None

    async def models(self, request: web.Request) -> web.Response:
        key, refused = self._key(request)
        if refused is not None:
            return refused
        data = [{"id": name, "object": "model", "owned_by": "fake"} for name in self.keys[key or ""]]
        return web.json_response({"object": "list", "data": data})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        key, refused = self._key(request)
        if refused is not None:
            return refused
        body = await request.json()
        self.bodies.append(body)
        model = body["model"]
        if model not in self.keys[key or ""]:
            error = {"message": f"The model `{model}` does not exist", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=404)
        content = body["messages"][-1]["content"]
        text = content if isinstance(content, str) else content[0]["text"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in [f"Echo from {model}:", f" {text}"]:
            await resp.write(_sse({"model": model, "choices": [{"index": 0, "delta": {"content": piece}}]}))
        await resp.write(_sse({"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.completions)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
