"""A FAKE of the Harvis web front end's server route `POST /api/ai-chat`, for tests.

The real front end is a Next.js app (not in this repository). Its main chat posts to
`/api/ai-chat`, a server route of the front end itself, which bridges the Vercel AI SDK
to the backend. This stand-in speaks the same protocol on both sides, so the backend can be
tested as the unchanged front end uses it:

- Request (from the browser): `{messages: [{role, content}], model, sessionId, textOnly=true,
  lowVram=false, ttsEngine="qwen"}`; a content may be a string or `[{text}, ...]`. No messages:
  400 `{"error": "No messages provided"}`.
- To the backend: `POST BACKEND_URL/api/chat` with `{message (the last message), history (the
  earlier ones), model (default "mistral"), text_only, low_vram, session_id (null unless a string
  of >= 32 characters), tts_engine}`, forwarding only the `Authorization` and `Cookie` headers it
  got. Up to 3 attempts 1 s apart when the backend can't be reached or sends no headers in 30 s.
- Response: always 200 once past the checks above, `text/plain; charset=utf-8` with
  `X-Vercel-AI-Data-Stream: v1` — the AI SDK data stream v1, one line per part:
  `0:"text"` (each `streaming` event's content), `2:[{...}]` (data: status updates, reasoning,
  sources, videos, `{audioPath, sessionId}`), `3:"error"`, then `e:{finishReason...}` and
  `d:{finishReason...}`. Backend errors, unreachable backends and broken streams are `3:` lines
  too; `0:""` keeps an idle stream alive every 15 s.

Values are judged the way the JavaScript original judges them (`[]` is true, `""` and `0` are
false, absent keys are left out of the JSON it writes), so edge cases come out the same.
`GET /_fake/health` is the fake's own hook (not the front end's), for tests to wait on.

    python tests/fakes/fake_frontend.py [--port 3000]   # BACKEND_URL defaults to http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import json
import logging
import math
import os
import re
import time
from typing import Any

import aiohttp
from aiohttp import web
from served import Served

log = logging.getLogger("fake-frontend")

DEFAULT_BACKEND_URL = "http://127.0.0.1:9000"
DEFAULT_PORT = 3000
DEFAULT_TTS_ENGINE = "qwen"
MAX_ATTEMPTS = 3
RETRY_DELAY_S = 1.0
HEADERS_TIMEOUT_S = 30.0  # the route aborts a backend call that sends no headers in 30 s
BODY_IDLE_TIMEOUT_S = 300.0  # Node's fetch (undici) gives up on a body silent for 300 s
KEEPALIVE_IDLE_S = 15.0
KEEPALIVE_CHECK_S = 5.0
MIN_SESSION_ID_LENGTH = 32
MAX_BODY_BYTES = 100 * 1024 * 1024  # nginx's limit in front of it

STREAM_HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "X-Vercel-AI-Data-Stream": "v1",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
}
FINISH_EVENT = {"finishReason": "stop", "usage": {"promptTokens": 0, "completionTokens": 0}, "isContinued": False}
FINISH_DATA = {"finishReason": "stop", "usage": {"promptTokens": 0, "completionTokens": 0}}

# What JavaScript's String.prototype.trim() removes.
JS_WHITESPACE = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # noqa: E501


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Absent:
    """A key missing from the JSON (JavaScript's `undefined`): JSON.stringify leaves it out."""

    def __repr__(self) -> str:
        return "undefined"


ABSENT: Any = _Absent()


def truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value: empty lists and objects are true."""
    if value is ABSENT or value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)  # NaN is false too
    if isinstance(value, str):
        return value != ""
    return True


def js_or(*values: Any) -> Any:
    """`a || b || c`: the first true value, else the last."""
    for value in values[:-1]:
        if truthy(value):
            return value
    return values[-1]


def js_trim(text: str) -> str:
    return text.strip(JS_WHITESPACE)


def js_length(text: str) -> int:
    """A string's length in UTF-16 code units, as JavaScript counts it."""
    return len(text.encode("utf-16-le")) // 2


def get(obj: Any, key: str) -> Any:
    """`obj.key` for a parsed JSON value; `null.key` throws, like JavaScript's TypeError."""
    if obj is None or obj is ABSENT:
        raise TypeError(f"Cannot read properties of {'null' if obj is None else 'undefined'} (reading '{key}')")
    if isinstance(obj, dict):
        return obj.get(key, ABSENT)
    return ABSENT


def to_json(value: Any) -> str:
    """JSON.stringify: compact, non-ASCII kept, absent object keys dropped."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not ABSENT}
        if isinstance(v, list):
            return [None if x is ABSENT else clean(x) for x in v]
        return v

    text = json.dumps(clean(value), ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate (valid in JSON, not in UTF-8) stays escaped, as JSON.stringify writes it.
    return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def content_text(content: Any) -> Any:
    """A message's text: the string itself, else the first part's `text`, else ""."""
    if isinstance(content, str):
        return content
    first = content[0] if isinstance(content, list) and content else ABSENT
    return js_or(get(first, "text") if isinstance(first, dict) else ABSENT, "")


def backend_body(body: Any) -> dict[str, Any] | None:
    """The backend's `/api/chat` body for an AI SDK request, or None when it has no messages.
    Raises TypeError where the original throws (a null body or message)."""
    messages = get(body, "messages")
    if not truthy(messages) or not isinstance(messages, list) or not messages:
        return None

    def default(key: str, value: Any) -> Any:  # destructuring defaults apply to undefined only
        found = get(body, key)
        return value if found is ABSENT else found

    session_id = get(body, "sessionId")
    valid_session = isinstance(session_id, str) and js_length(session_id) >= MIN_SESSION_ID_LENGTH
    return {
        "message": content_text(get(messages[-1], "content")),
        "history": [{"role": get(m, "role"), "content": content_text(get(m, "content"))} for m in messages[:-1]],
        "model": js_or(get(body, "model"), "mistral"),
        "text_only": default("textOnly", True),
        "low_vram": default("lowVram", False),
        "session_id": session_id if valid_session else None,
        "tts_engine": default("ttsEngine", DEFAULT_TTS_ENGINE),
    }


def forwarded_headers(request: web.Request) -> dict[str, str]:
    """Only the caller's credentials go on to the backend."""
    headers = {"Content-Type": "application/json"}
    for name in ("Authorization", "Cookie"):
        if request.headers.get(name):
            headers[name] = request.headers[name]
    return headers


class BackendUnreachable(Exception):
    pass


class DataStream:
    """The AI SDK data stream to the browser: one part per line, written one at a time (the
    keep-alive ticker writes too), and closed for good once the browser has gone."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.closed = False
        self.last_activity = time.monotonic()
        self._lock = asyncio.Lock()

    async def send(self, code: str, value: Any) -> bool:
        """Write `code:json`; False once the browser is gone (the stream stops)."""
        if self.closed:
            return False
        async with self._lock:
            try:
                await self.response.write(f"{code}:{to_json(value)}\n".encode())
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                self.closed = True
                return False
        self.last_activity = time.monotonic()
        return True

    async def keep_alive(self) -> None:
        while not self.closed:
            await asyncio.sleep(KEEPALIVE_CHECK_S)
            if time.monotonic() - self.last_activity >= KEEPALIVE_IDLE_S:
                await self.send("0", "")

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
                await self.response.write_eof()


class Translation:
    """The backend's SSE events → AI SDK stream parts, with what the route remembers between them."""

    def __init__(self, out: DataStream) -> None:
        self.out = out
        self.full_text = ""
        self.final_answer: Any = ""
        self.assistant_started = False

    async def event(self, data: Any) -> bool:
        """Handle one event; False when the browser is gone."""
        status = get(data, "status")
        if status == "streaming" and truthy(get(data, "content")):
            content = data["content"]
            if not isinstance(content, str):
                raise TypeError("content.replace is not a function")
            text = content.replace("\r\n", "\n").replace("\r", "\n")
            self.full_text += text
            self.assistant_started = True
            return await self.out.send("0", text)
        if status in ("generating_audio", "processing"):
            detail = js_or(get(data, "detail"), get(data, "message"), "")
            return await self.out.send("2", [{"type": "status_update", "status": status, "detail": detail}])
        if status == "researching":
            # Research progress is not sent on; only an empty assistant message is started.
            if not self.assistant_started:
                self.assistant_started = True
                return await self.out.send("0", " ")
            return True
        if status == "complete":
            return await self.complete(data)
        if status == "error":
            return await self.out.send("3", js_or(get(data, "error"), "Unknown error"))
        return True

    async def complete(self, data: dict[str, Any]) -> bool:
        # Parts are sent one by one as they are worked out: a value the original can't read
        # (a reasoning that is not a string) stops it half-way, after what it already sent.
        reasoning = js_or(data.get("reasoning", ABSENT), "")
        self.final_answer = js_or(data.get("final_answer", ABSENT), self.full_text)
        content = js_or(self.final_answer, data.get("response", ABSENT))
        # Nothing streamed (a cached or researched answer): the whole answer goes as one part.
        if (not self.full_text or not js_trim(self.full_text)) and truthy(content):
            if not await self.out.send("0", content):
                return False
            self.full_text = content
        if truthy(reasoning):
            steps = [s for s in reasoning.split("\n") if js_trim(s)]
            data_part = {"type": "reasoning", "steps": steps, "finalAnswer": self.final_answer}
            if not await self.out.send("2", [data_part]):
                return False
        sources = js_or(data.get("sources", ABSENT), data.get("search_results", ABSENT))
        if truthy(sources):
            auto = js_or(data.get("auto_researched", ABSENT), False)
            if not await self.out.send("2", [{"type": "search_results", "results": sources, "isAutoResearch": auto}]):
                return False
        if truthy(data.get("videos", ABSENT)) and not await self.out.send(
            "2", [{"type": "videos", "videos": data["videos"]}]
        ):
            return False
        audio_path = js_or(data.get("audio_path", ABSENT), None)
        session_id = data.get("session_id", ABSENT)
        if (truthy(audio_path) or truthy(session_id)) and not await self.out.send(
            "2", [{"audioPath": audio_path, "sessionId": session_id}]
        ):
            return False
        return await self.out.send("e", FINISH_EVENT) and await self.out.send("d", FINISH_DATA)

    async def finish_without_complete(self) -> None:
        """The backend stopped without `complete` after some text: send what came, and finish."""
        if self.full_text and not truthy(self.final_answer) and not self.out.closed:
            for code, value in (("0", self.full_text), ("e", FINISH_EVENT), ("d", FINISH_DATA)):
                await self.out.send(code, value)


def sse_data(line: str) -> Any:
    """The JSON of one SSE `data: ` line, ABSENT for anything else (comments, blanks, other fields,
    malformed JSON): the route skips those."""
    line = js_trim(line)
    if not line.startswith("data: "):
        return ABSENT
    payload = js_trim(line[6:])
    if not payload:
        return ABSENT
    try:
        return json.loads(payload)
    except ValueError:
        return ABSENT


async def relay(backend: aiohttp.ClientResponse, out: DataStream) -> None:
    """Read the backend's SSE as it comes and write the browser's stream."""
    translation = Translation(out)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    try:
        async for chunk in backend.content.iter_any():
            if out.closed:
                break
            buffer += decoder.decode(chunk)
            *lines, buffer = buffer.split("\n")
            for line in lines:
                data = sse_data(line)
                if data is ABSENT:
                    continue
                try:
                    if not await translation.event(data):
                        break
                except (TypeError, AttributeError) as exc:  # the original skips an event it can't read
                    log.debug("skipped an event: %s", exc)
            if out.closed:  # the browser has gone: stop reading (closing the backend's stream)
                break
        await translation.finish_without_complete()
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("backend stream broke: %r", exc)
        await out.send("3", "Stream error: TypeError: terminated")


def parse_data_stream(raw: bytes) -> list[tuple[str, Any]]:
    """What the browser's AI SDK reads back: one `<code>:<JSON>` part per line (for tests)."""
    text = raw.decode()
    assert text.endswith("\n"), text[-200:]
    parts = []
    for line in text[:-1].split("\n"):
        code, colon, value = line.partition(":")
        assert colon and len(code) == 1, line
        parts.append((code, json.loads(value)))
    return parts


class FakeFrontend(Served):
    def __init__(self, backend_url: str | None = None) -> None:
        self.backend_url = (backend_url or os.environ.get("BACKEND_URL") or DEFAULT_BACKEND_URL).rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    # ---------------------------------------------------------------- app

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/api/ai-chat", self.ai_chat)
        app.router.add_get("/_fake/health", self.health)
        app.cleanup_ctx.append(self._client)
        return app

    async def _client(self, _: web.Application) -> Any:
        # No cookie jar: a cookie the backend sets for one user must never reach another.
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=BODY_IDLE_TIMEOUT_S),
        )
        yield
        await self.session.close()

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"fake": "harvis front end", "backend_url": self.backend_url})

    # ---------------------------------------------------------------- the route

    async def ai_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = backend_body(json.loads(await request.read()))
        except (ValueError, TypeError) as exc:  # unreadable JSON, a null message: the route's catch-all
            return await error_stream(request, str(exc) or "Internal server error")
        if body is None:
            return web.json_response({"error": "No messages provided"}, status=400)
        log.info(
            "calling %s/api/chat - model: %s, session: %s, message: %.50s",
            self.backend_url,
            body["model"],
            body["session_id"] or "new",
            body["message"],
        )
        try:
            backend = await self._post_chat(body, forwarded_headers(request))
        except BackendUnreachable as exc:
            return await error_stream(request, f"Failed to connect to backend after {MAX_ATTEMPTS} attempts: {exc}")
        async with backend:
            if backend.status >= 400:
                text = await backend.text(errors="replace")
                return await error_stream(request, f"Backend error: {backend.status} - {text}")
            response = web.StreamResponse(headers=STREAM_HEADERS)
            await response.prepare(request)
            out = DataStream(response)
            ticker = asyncio.create_task(out.keep_alive())
            try:
                await relay(backend, out)
            finally:
                ticker.cancel()
                await out.close()
            return response

    async def _post_chat(self, body: dict[str, Any], headers: dict[str, str]) -> aiohttp.ClientResponse:
        """POST to the backend until it answers with headers (any status from 200 up)."""
        assert self.session is not None
        last = "Error: All retry attempts failed"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                post = self.session.post(f"{self.backend_url}/api/chat", data=to_json(body), headers=headers)
                response = await asyncio.wait_for(post, HEADERS_TIMEOUT_S)
                # fetch's `ok` is 2xx (aiohttp's is < 400); an HTTP error is an answer too.
                if 200 <= response.status < 300 or response.status >= 400:
                    return response
                response.release()
                last = f"Error: HTTP {response.status}: {response.reason}"
            except TimeoutError:
                last = "AbortError: This operation was aborted"
            except aiohttp.ClientError as exc:
                log.warning("attempt %d failed: %r", attempt, exc)
                last = "TypeError: fetch failed"
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(RETRY_DELAY_S)
        raise BackendUnreachable(last)


async def error_stream(request: web.Request, message: str) -> web.StreamResponse:
    """A 200 stream holding one error part: the AI SDK client reads errors from the stream."""
    response = web.StreamResponse(headers=STREAM_HEADERS)
    await response.prepare(request)
    out = DataStream(response)
    await out.send("3", message)
    await out.close()
    return response


async def _serve(host: str, port: int, backend_url: str | None) -> None:
    fake = FakeFrontend(backend_url)
    url = await fake.start(host, port)
    print(f"fake front end listening on {url}, backend {fake.backend_url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake of the Harvis web front end's /api/ai-chat route.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or DEFAULT_PORT))
    parser.add_argument("--backend", help=f"the backend's base URL (default $BACKEND_URL or {DEFAULT_BACKEND_URL})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fake-frontend %(levelname)s %(message)s")
    asyncio.run(_serve(args.host, args.port, args.backend))


if __name__ == "__main__":
    main()
