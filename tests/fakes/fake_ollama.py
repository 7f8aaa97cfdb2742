"""A FAKE Ollama server for tests: Ollama's real HTTP wire format, canned answers.

Speaks what Harvis uses of Ollama's API — `POST /api/chat` streamed as NDJSON
(one JSON object per line, the last with `"done": true` and the counts),
`GET /api/tags`, `GET /api/ps`, `POST /api/generate` with `keep_alive: 0`
(unload), `POST /api/embed`, `GET /api/version` — so tests can assert framing,
persistence, disconnects and errors deterministically. It is not a model.

The answer to a chat is `Echo: <last user message>` streamed word by word.
Markers in the user's message steer it:

    [[slow]]        60 tokens, 0.1 s apart (for disconnect tests)
    [[delay:S]]     wait S seconds before the first token (heartbeat tests)
    [[error]]       a few tokens, then an `{"error": ...}` line mid-stream
    [[think]]       the answer starts with `<think>…</think>` reasoning
    [[long:N]]      N tokens

`GET /_fake/stats` (not Ollama's: the fake's own test hook) tells how many
chats started, completed and were cut off by the client, and the last request.

    python tests/fakes/fake_ollama.py --port 11500      # standalone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from served import Served

DEFAULT_MODELS: dict[str, int] = {
    "fake-llama:latest": 4_100_000_000,
    "fake-vision:latest": 2_900_000_000,
    "fake-think:latest": 1_200_000_000,
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeOllama(Served):
    def __init__(self, models: dict[str, int] | None = None, token_delay_s: float = 0.0) -> None:
        self.models = dict(models or DEFAULT_MODELS)
        self.token_delay_s = token_delay_s
        self.loaded: dict[str, float] = {}
        self.stats: dict[str, Any] = {"started": 0, "completed": 0, "cancelled": 0, "last_request": None}

    # ---------------------------------------------------------------- app

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.root)
        app.router.add_get("/api/version", self.version)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/api/ps", self.ps)
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/generate", self.generate)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_get("/_fake/stats", self.fake_stats)
        return app

    # ---------------------------------------------------------------- routes

    def _not_found(self, model: str) -> web.Response:
        return web.json_response({"error": f'model "{model}" not found, try pulling it first'}, status=404)

    def _resolve(self, model: str) -> str | None:
        if model in self.models:
            return model
        if f"{model}:latest" in self.models:
            return f"{model}:latest"
        return None

    async def root(self, _: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version(self, _: web.Request) -> web.Response:
        return web.json_response({"version": "0.0.0-fake"})

    async def fake_stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def tags(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": "2026-01-01T00:00:00Z",
                        "size": size,
                        "digest": f"{abs(hash(name)):064x}"[:64],
                        "details": {
                            "format": "gguf",
                            "family": "fake",
                            "parameter_size": "1B",
                            "quantization_level": "Q4_K_M",
                        },
                    }
                    for name, size in self.models.items()
                ]
            }
        )

    async def ps(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "size": self.models.get(name, 0),
                        "size_vram": 0,
                        "expires_at": "2099-01-01T00:00:00Z",
                    }
                    for name in self.loaded
                ]
            }
        )

    async def generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = self._resolve(str(body.get("model", "")))
        if model is None:
            return self._not_found(str(body.get("model", "")))
        if body.get("keep_alive") in (0, "0", "0s"):
            self.loaded.pop(model, None)
            return web.json_response(
                {"model": model, "created_at": _now(), "response": "", "done": True, "done_reason": "unload"}
            )
        self.loaded[model] = time.time()
        return web.json_response({"model": model, "created_at": _now(), "response": "ok", "done": True})

    async def embed(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = self._resolve(str(body.get("model", "")))
        if model is None:
            return self._not_found(str(body.get("model", "")))
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        vectors = [[(len(t) % 7) / 7.0, (sum(map(ord, t)) % 13) / 13.0, 1.0] for t in texts]
        return web.json_response({"model": model, "embeddings": vectors})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "invalid JSON"}, status=400)
        self.stats["last_request"] = body
        model = self._resolve(str(body.get("model", "")))
        if model is None:
            return self._not_found(str(body.get("model", "")))
        messages = body.get("messages") or []
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
        text = str(last_user.get("content") or "")
        tokens = self._answer(text, model, last_user)
        delay = 0.1 if "[[slow]]" in text else self.token_delay_s
        first_delay = float(m.group(1)) if (m := re.search(r"\[\[delay:([\d.]+)\]\]", text)) else 0.0

        if not body.get("stream", True):
            self.stats["started"] += 1
            self.stats["completed"] += 1
            return web.json_response(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": "".join(tokens)},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": len(messages),
                    "eval_count": len(tokens),
                }
            )

        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        self.stats["started"] += 1
        self.loaded[model] = time.time()
        try:
            if first_delay:
                await asyncio.sleep(first_delay)
            for i, token in enumerate(tokens):
                if "[[error]]" in text and i == 3:
                    await resp.write(_line({"error": "fake backend failure: out of memory"}))
                    return resp
                await resp.write(
                    _line(
                        {
                            "model": model,
                            "created_at": _now(),
                            "message": {"role": "assistant", "content": token},
                            "done": False,
                        }
                    )
                )
                if delay:
                    await asyncio.sleep(delay)
            await resp.write(
                _line(
                    {
                        "model": model,
                        "created_at": _now(),
                        "message": {"role": "assistant", "content": ""},
                        "done": True,
                        "done_reason": "stop",
                        "total_duration": 1000,
                        "load_duration": 10,
                        "prompt_eval_count": len(messages),
                        "prompt_eval_duration": 100,
                        "eval_count": len(tokens),
                        "eval_duration": 900,
                    }
                )
            )
            await resp.write_eof()
            self.stats["completed"] += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.stats["cancelled"] += 1
            raise
        return resp

    def _answer(self, text: str, model: str, message: dict[str, Any]) -> list[str]:
        if m := re.search(r"\[\[long:(\d+)\]\]", text):
            return [f"tok{i} " for i in range(int(m.group(1)))]
        if "[[slow]]" in text:
            return [f"slow{i} " for i in range(60)]
        clean = re.sub(r"\[\[[^\]]*\]\]", "", text).strip()
        words = f"Echo: {clean}".split(" ")
        tokens = [w + " " for w in words[:-1]] + [words[-1]]
        if message.get("images"):
            tokens = [f"I see {len(message['images'])} image(s). ", *tokens]
        if "[[think]]" in text or model.startswith("fake-think"):
            tokens = ["<thi", "nk>Let me ", "think.</th", "ink>", *tokens]
        return tokens


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


async def _serve(host: str, port: int) -> None:
    fake = FakeOllama()
    url = await fake.start(host, port)
    print(f"fake ollama listening on {url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Ollama server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11500)
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
