"""The LLM client every Harvis service uses: streaming chat, model lists, embeddings.

Two providers behind one interface (`LLMClient`):

- `OllamaClient` — Ollama's native API: `POST /api/chat` (streamed NDJSON),
  `GET /api/tags`, `GET /api/ps`, `POST /api/embed`, unload via `keep_alive: 0`.
- `OpenAIClient` — any OpenAI-compatible server (llama.cpp / llama-cpp-python,
  vLLM, LM Studio, OpenAI): `POST /v1/chat/completions` (streamed SSE),
  `GET /v1/models`, `POST /v1/embeddings`.

    client = create_llm_client("ollama", "http://127.0.0.1:11434")
    async for chunk in client.chat_stream([{"role": "user", "content": "hi"}], "llama3.2"):
        print(chunk.content, end="")          # chunk.reasoning holds <think>…</think> text
    await client.close()

Streaming first: `chat()` is `chat_stream()` collected. Stopping the iteration
(break, `aclose()`, task cancellation) closes the HTTP connection, which makes
the backend stop generating. Failures raise `LLMError` subclasses with a
message fit for users: `LLMUnavailable` (backend down), `ModelNotFound`,
`LLMTimeout`. Only needs aiohttp (and the standard library).
"""

from __future__ import annotations

import asyncio
import errno
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from .config import LLMSettings

__all__ = [
    "ChatChunk",
    "ChatResult",
    "LLMAuthError",
    "LLMClient",
    "LLMError",
    "LLMTimeout",
    "LLMUnavailable",
    "LoadedModel",
    "ModelInfo",
    "ModelNotFound",
    "ModelPicker",
    "OllamaClient",
    "OpenAIClient",
    "ThinkSplitter",
    "create_llm_client",
    "human_size",
    "match_model",
]

Message = dict[str, Any]  # {"role": "system"|"user"|"assistant", "content": str, "images"?: [base64]}


# ---------------------------------------------------------------- errors


class LLMError(Exception):
    """The backend failed; `str(exc)` is a message fit to show a user."""

    kind = "error"
    status = 502  # the HTTP status a route should answer with

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LLMUnavailable(LLMError):
    """The backend is not reachable (down, wrong URL)."""

    kind = "unavailable"
    status = 503


class LLMAuthError(LLMError):
    """The backend refused the API key it was given (401/403)."""

    kind = "auth"


class ModelNotFound(LLMError):
    """The backend does not have the requested model."""

    kind = "model_not_found"
    status = 404


class LLMInputTooLong(LLMError):
    """The request doesn't fit the model's context window: the caller's input is too long."""

    kind = "input_too_long"
    status = 413


class LLMTimeout(LLMError):
    """The backend accepted the request but stopped answering."""

    kind = "timeout"
    status = 504


# ---------------------------------------------------------------- results


@dataclass(slots=True)
class ModelInfo:
    name: str
    size: int | None = None  # bytes on disk, when the backend says
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    modified_at: str | None = None


@dataclass(slots=True)
class LoadedModel:
    name: str
    size: int | None = None  # bytes in memory
    size_vram: int | None = None
    expires_at: str | None = None


@dataclass(slots=True)
class ChatChunk:
    """A piece of the answer. `done` is set on the last chunk, which carries the counts."""

    content: str = ""
    reasoning: str = ""
    done: bool = False
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done_reason: str | None = None


@dataclass(slots=True)
class ChatResult:
    content: str
    reasoning: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done_reason: str | None = None
    elapsed_s: float = 0.0
    chunks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def human_size(size: int | None) -> str:
    """Bytes as the front end shows them: `4.1GB`, `253MB` ("" when unknown)."""
    if not size:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{size}B"


# ---------------------------------------------------------------- <think> splitting


class ThinkSplitter:
    """Splits streamed text into answer and `<think>…</think>` reasoning, even when a
    tag is cut across chunks (a possible tag prefix is held back until it resolves)."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._buf = ""
        self._thinking = False

    def feed(self, text: str) -> tuple[str, str]:
        """(content, reasoning) that can be released now."""
        self._buf += text
        content: list[str] = []
        reasoning: list[str] = []
        while self._buf:
            tag = self.CLOSE if self._thinking else self.OPEN
            idx = self._buf.find(tag)
            if idx >= 0:
                (reasoning if self._thinking else content).append(self._buf[:idx])
                self._buf = self._buf[idx + len(tag) :]
                self._thinking = not self._thinking
                continue
            keep = self._partial_tag_len(self._buf, tag)
            release, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
            (reasoning if self._thinking else content).append(release)
            break
        return "".join(content), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        rest, self._buf = self._buf, ""
        return ("", rest) if self._thinking else (rest, "")

    @staticmethod
    def _partial_tag_len(buf: str, tag: str) -> int:
        for n in range(min(len(tag) - 1, len(buf)), 0, -1):
            if buf.endswith(tag[:n]):
                return n
        return 0


# ---------------------------------------------------------------- the interface


class LLMClient(Protocol):
    provider: str
    base_url: str

    async def list_models(self) -> list[ModelInfo]: ...

    def chat_stream(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatChunk]: ...

    async def chat(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> ChatResult: ...

    async def embed(self, texts: Sequence[str], model: str) -> list[list[float]]: ...

    async def loaded_models(self) -> list[LoadedModel]: ...

    async def unload(self, model: str) -> bool: ...

    async def close(self) -> None: ...


class _BaseClient:
    provider = "base"

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 300.0,
        request_timeout_s: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """`read_timeout_s` bounds the wait for each piece of a stream (the first one
        includes loading the model); `request_timeout_s` bounds non-streamed calls."""
        self.base_url = base_url.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.request_timeout_s = request_timeout_s
        self._session = session
        self._own_session = session is None

    # -- plumbing

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Idle connections are dropped before uvicorn's 5 s keep-alive (llama-cpp-python's
            # server) closes them under us: reusing one it closed was a "connection reset".
            connector = aiohttp.TCPConnector(limit=64, enable_cleanup_closed=True, keepalive_timeout=4)
            self._session = aiohttp.ClientSession(connector=connector)
            self._own_session = True
        return self._session

    def _headers(self) -> dict[str, str]:
        """Sent with every request (not set on the session: a session passed in, e.g. an
        SSRF-vetting one, is used with this client's own credentials)."""
        return {}

    def _stream_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s, sock_read=self.read_timeout_s)

    def _request_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.request_timeout_s, sock_connect=self.connect_timeout_s)

    def _unavailable(self, exc: BaseException) -> LLMUnavailable:
        return LLMUnavailable(
            f"The language model backend ({self.provider} at {self.base_url}) is not reachable: {exc}"
        )

    async def _error_from(self, resp: aiohttp.ClientResponse, model: str | None) -> LLMError:
        try:
            text = (await resp.text())[:2000]
        except Exception:  # the body is only for the message
            text = ""
        detail = text
        try:
            body = json.loads(text)
            err = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(err, dict):
                err = err.get("message") or json.dumps(err)
            detail = str(err)
        except (ValueError, AttributeError):
            pass
        low = detail.lower()
        if resp.status in (400, 413) and ("context_length_exceeded" in text or "maximum context length" in low):
            return LLMInputTooLong(f"The message is too long for the model: {detail}")
        if resp.status in (401, 403):
            return LLMAuthError(f"The {self.provider} backend refused the API key ({resp.status}): {detail}")
        if model and (resp.status == 404 or ("model" in low and ("not found" in low or "does not exist" in low))):
            return ModelNotFound(f"Model '{model}' is not available on the {self.provider} backend: {detail}")
        if resp.status in (502, 503):
            return LLMUnavailable(f"The {self.provider} backend is unavailable ({resp.status}): {detail}")
        return LLMError(f"The {self.provider} backend answered {resp.status}: {detail or resp.reason}")

    async def _get_json(self, path: str) -> Any:
        return await self._request_json("GET", path, None, None)

    async def _post_json(self, path: str, body: dict[str, Any], model: str | None) -> Any:
        return await self._request_json("POST", path, body, model)

    async def _send(self, method: str, url: str, **kw: Any) -> aiohttp.ClientResponse:
        """A request on a pooled keep-alive connection that the backend closed meanwhile fails
        with ServerDisconnected or a reset before anything came back (llama-cpp-python's server
        closes a connection after some streams): the backend never read it, so it goes once more,
        on a new connection."""
        try:
            return await self._http().request(method, url, **kw)
        except aiohttp.ServerDisconnectedError:
            return await self._http().request(method, url, **kw)
        except aiohttp.ClientOSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
            return await self._http().request(method, url, **kw)

    async def _request_json(self, method: str, path: str, body: dict[str, Any] | None, model: str | None) -> Any:
        """One non-streamed call, every transport failure mapped to an LLMError."""
        try:
            async with await self._send(
                method, self.base_url + path, json=body, headers=self._headers(), timeout=self._request_timeout()
            ) as resp:
                if resp.status >= 400:
                    raise await self._error_from(resp, model)
                return await resp.json(content_type=None)
        except LLMError:
            raise
        except aiohttp.ConnectionTimeoutError as exc:
            raise self._unavailable(exc) from exc
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            raise LLMTimeout(f"The {self.provider} backend did not answer {path} in time") from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise self._unavailable(exc) from exc
        except (aiohttp.ContentTypeError, ValueError) as exc:
            raise LLMError(f"The {self.provider} backend sent an invalid answer to {path}") from exc

    async def _stream_lines(self, path: str, body: dict[str, Any], model: str) -> AsyncIterator[bytes]:
        """POST `body` and yield the response's non-empty lines; the connection is
        closed (not pooled) when the consumer stops early, so generation stops."""
        resp: aiohttp.ClientResponse | None = None
        finished = False
        lines = 0
        try:
            try:
                resp = await self._send(
                    "POST", self.base_url + path, json=body, headers=self._headers(), timeout=self._stream_timeout()
                )
            except aiohttp.ConnectionTimeoutError as exc:
                raise self._unavailable(exc) from exc
            except TimeoutError as exc:
                raise LLMTimeout(f"The {self.provider} backend did not start answering in time") from exc
            except (aiohttp.ClientConnectionError, OSError) as exc:
                raise self._unavailable(exc) from exc
            if resp.status >= 400:
                raise await self._error_from(resp, model)
            try:
                async for raw in resp.content:
                    line = raw.strip()
                    if line:
                        lines += 1
                        yield line
            except TimeoutError as exc:
                raise LLMTimeout(
                    f"The {self.provider} backend stopped answering (no data for {self.read_timeout_s:g} s)"
                ) from exc
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                raise LLMUnavailable(f"The {self.provider} backend broke off the answer: {exc}") from exc
            finished = True
        finally:
            if resp is not None:
                if finished and lines:
                    resp.release()
                else:
                    # Drop the connection: the backend sees the client go; and a backend that
                    # failed the request mid-way (an empty stream) may have closed it already.
                    resp.close()

    async def chat(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> ChatResult:
        start = time.perf_counter()
        content: list[str] = []
        reasoning: list[str] = []
        last = ChatChunk()
        count = 0
        async for chunk in self.chat_stream(  # type: ignore[attr-defined]
            messages, model, temperature=temperature, max_tokens=max_tokens, options=options
        ):
            content.append(chunk.content)
            reasoning.append(chunk.reasoning)
            count += 1
            last = chunk
        return ChatResult(
            content="".join(content),
            reasoning="".join(reasoning),
            model=last.model or model,
            prompt_tokens=last.prompt_tokens,
            completion_tokens=last.completion_tokens,
            done_reason=last.done_reason,
            elapsed_s=time.perf_counter() - start,
            chunks=count,
        )

    async def close(self) -> None:
        if self._session is not None and self._own_session and not self._session.closed:
            await self._session.close()
        self._session = None


# ---------------------------------------------------------------- Ollama


class OllamaClient(_BaseClient):
    provider = "ollama"

    async def list_models(self) -> list[ModelInfo]:
        body = await self._get_json("/api/tags")
        out = []
        for m in (body or {}).get("models") or []:
            details = m.get("details") or {}
            out.append(
                ModelInfo(
                    name=m.get("name") or m.get("model") or "",
                    size=m.get("size"),
                    family=details.get("family"),
                    parameter_size=details.get("parameter_size"),
                    quantization=details.get("quantization_level"),
                    modified_at=m.get("modified_at"),
                )
            )
        return [m for m in out if m.name]

    async def loaded_models(self) -> list[LoadedModel]:
        body = await self._get_json("/api/ps")
        return [
            LoadedModel(
                name=m.get("name") or m.get("model") or "",
                size=m.get("size"),
                size_vram=m.get("size_vram"),
                expires_at=m.get("expires_at"),
            )
            for m in (body or {}).get("models") or []
        ]

    async def unload(self, model: str) -> bool:
        body = await self._post_json("/api/generate", {"model": model, "keep_alive": 0}, model)
        return bool(body.get("done", True)) if isinstance(body, dict) else True

    async def embed(self, texts: Sequence[str], model: str) -> list[list[float]]:
        body = await self._post_json("/api/embed", {"model": model, "input": list(texts)}, model)
        vectors = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise LLMError("The ollama backend sent no embeddings")
        return vectors

    async def chat_stream(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatChunk]:
        opts = dict(options or {})
        if temperature is not None:
            opts["temperature"] = temperature
        if max_tokens is not None:
            opts["num_predict"] = max_tokens
        body: dict[str, Any] = {"model": model, "messages": [_ollama_message(m) for m in messages], "stream": True}
        if opts:
            body["options"] = opts
        splitter = ThinkSplitter()
        async for line in self._stream_lines("/api/chat", body, model):
            try:
                event = json.loads(line)
            except ValueError as exc:
                raise LLMError("The ollama backend sent a malformed stream line") from exc
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                err = str(event["error"])
                if "not found" in err.lower():
                    raise ModelNotFound(f"Model '{model}' is not available on the ollama backend: {err}")
                raise LLMError(f"The ollama backend failed: {err}")
            msg = event.get("message") or {}
            content, reasoning = splitter.feed(str(msg.get("content") or ""))
            reasoning = str(msg.get("thinking") or "") + reasoning  # Ollama's own `think` field
            if event.get("done"):
                tail_c, tail_r = splitter.flush()
                yield ChatChunk(
                    content=content + tail_c,
                    reasoning=reasoning + tail_r,
                    done=True,
                    model=event.get("model") or model,
                    prompt_tokens=event.get("prompt_eval_count"),
                    completion_tokens=event.get("eval_count"),
                    done_reason=event.get("done_reason"),
                )
                return
            if content or reasoning:
                yield ChatChunk(content=content, reasoning=reasoning, model=event.get("model") or model)
        raise LLMUnavailable("The ollama backend ended the answer without finishing it")


def _ollama_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.get("role", "user"), "content": m.get("content") or ""}
    if m.get("images"):
        out["images"] = [_strip_data_url(i) for i in m["images"]]
    return out


def _strip_data_url(image: str) -> str:
    return image.split(",", 1)[1] if image.startswith("data:") and "," in image else image


# ---------------------------------------------------------------- OpenAI-compatible


class OpenAIClient(_BaseClient):
    provider = "openai"

    def __init__(self, base_url: str, *, api_key: str | None = None, **kwargs: Any) -> None:
        base = base_url.rstrip("/")
        super().__init__(base.removesuffix("/v1"), **kwargs)
        self.api_key = api_key

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def list_models(self) -> list[ModelInfo]:
        body = await self._get_json("/v1/models")
        out = []
        for m in (body or {}).get("data") or []:
            name = m.get("id") or ""
            if name:
                meta = m.get("meta") or {}
                out.append(ModelInfo(name=name, size=meta.get("size") if isinstance(meta, dict) else None))
        return out

    async def loaded_models(self) -> list[LoadedModel]:
        # The OpenAI API has no notion of "loaded": a server serves what it lists.
        return [LoadedModel(name=m.name, size=m.size) for m in await self.list_models()]

    async def unload(self, model: str) -> bool:
        return False  # not part of the API: the server keeps its model

    async def embed(self, texts: Sequence[str], model: str) -> list[list[float]]:
        body = await self._post_json("/v1/embeddings", {"model": model, "input": list(texts)}, model)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise LLMError("The openai backend sent no embeddings")
        return [d["embedding"] for d in sorted(data, key=lambda d: d.get("index", 0))]

    async def chat_stream(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatChunk]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_openai_message(m) for m in messages],
            "stream": True,
            **(options or {}),
        }
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        splitter = ThinkSplitter()
        finish: str | None = None
        usage: dict[str, Any] = {}
        served_model = model
        events = 0
        async for line in self._stream_lines("/v1/chat/completions", body, model):
            if not line.startswith(b"data:"):
                continue  # SSE comments, event names
            events += 1
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            try:
                event = json.loads(data)
            except ValueError as exc:
                raise LLMError("The openai backend sent a malformed stream event") from exc
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                err = event["error"]
                raise LLMError(f"The openai backend failed: {err.get('message') if isinstance(err, dict) else err}")
            served_model = event.get("model") or served_model
            if event.get("usage"):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                content, reasoning = splitter.feed(str(delta.get("content") or ""))
                reasoning = str(delta.get("reasoning_content") or delta.get("reasoning") or "") + reasoning
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if content or reasoning:
                    yield ChatChunk(content=content, reasoning=reasoning, model=served_model)
        else:
            if finish is None and events == 0:
                # llama-cpp-python's server fails a request it can't serve (a prompt longer than
                # the context window) after it has sent the stream's headers: the stream is just
                # empty. Asked once more without streaming, it answers the error properly.
                await self._post_json("/v1/chat/completions", {**body, "stream": False, "max_tokens": 1}, model)
            if finish is None:
                raise LLMUnavailable("The openai backend ended the answer without finishing it")
        tail_c, tail_r = splitter.flush()
        yield ChatChunk(
            content=tail_c,
            reasoning=tail_r,
            done=True,
            model=served_model,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            done_reason=finish or "stop",
        )


def _openai_message(m: Message) -> dict[str, Any]:
    role, content = m.get("role", "user"), m.get("content") or ""
    if not m.get("images"):
        return {"role": role, "content": content}
    parts: list[dict[str, Any]] = [{"type": "text", "text": content}]
    for image in m["images"]:
        url = image if image.startswith("data:") else f"data:image/png;base64,{image}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": role, "content": parts}


# ---------------------------------------------------------------- factory

PROVIDERS = ("ollama", "openai")


def create_llm_client(
    provider: str,
    base_url: str,
    *,
    api_key: str | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 300.0,
    request_timeout_s: float = 30.0,
    session: aiohttp.ClientSession | None = None,
) -> OllamaClient | OpenAIClient:
    """`provider` is "ollama" (Ollama's native API) or "openai" (an OpenAI-compatible server)."""
    kw: dict[str, Any] = {
        "connect_timeout_s": connect_timeout_s,
        "read_timeout_s": read_timeout_s,
        "request_timeout_s": request_timeout_s,
        "session": session,
    }
    name = provider.strip().lower()
    if name == "ollama":
        return OllamaClient(base_url, **kw)
    if name in ("openai", "openai-compatible", "llamacpp", "llama.cpp", "vllm", "lmstudio"):
        return OpenAIClient(base_url, api_key=api_key, **kw)
    raise ValueError(f"unknown LLM provider {provider!r}: choose one of {', '.join(PROVIDERS)}")


def client_from_settings(settings: LLMSettings, **overrides: Any) -> OllamaClient | OpenAIClient:
    """The client for a service's `LLMSettings` (harvis_common.config)."""
    kw: dict[str, Any] = {
        "api_key": settings.openai_api_key or None if settings.llm_provider == "openai" else None,
        "connect_timeout_s": settings.llm_connect_timeout_s,
        "read_timeout_s": settings.llm_read_timeout_s,
        "request_timeout_s": settings.llm_request_timeout_s,
        **overrides,
    }
    return create_llm_client(settings.llm_provider, settings.llm_base_url, **kw)


def match_model(name: str, names: Sequence[str]) -> str | None:
    """`name` as the backend lists it (Ollama adds `:latest` to untagged names)."""
    if name in names:
        return name
    if ":" not in name and f"{name}:latest" in names:
        return f"{name}:latest"
    return None


class ModelPicker:
    """Which model serves a request: the requested one when the backend has it, else the
    configured default, else the first one listed (the front end sends `mistral` when the
    user picked nothing). The backend's model list is cached for `ttl_s`."""

    def __init__(self, client: LLMClient, default_model: str = "", ttl_s: float = 10.0) -> None:
        self.client = client
        self.default_model = default_model
        self.ttl_s = ttl_s
        self._models: list[ModelInfo] = []
        self._models_at = 0.0
        self._lock = asyncio.Lock()

    async def models(self, fresh: bool = False) -> list[ModelInfo]:
        """The backend's models (cached briefly); raises LLMError when it is down."""
        if not fresh and self._models and time.monotonic() - self._models_at < self.ttl_s:
            return self._models
        async with self._lock:
            if not fresh and self._models and time.monotonic() - self._models_at < self.ttl_s:
                return self._models
            self._models, self._models_at = await self.client.list_models(), time.monotonic()
            return self._models

    async def pick(self, requested: str | None, preferred_default: str = "") -> tuple[str, bool]:
        """(model, fell_back): fell_back is true when `requested` was empty or unknown."""
        names = [m.name for m in await self.models()]
        if not names:
            provider = getattr(self.client, "provider", "LLM")
            raise LLMError(f"The {provider} backend has no models: pull one (e.g. `ollama pull llama3.2`)")
        found = match_model(requested, names) if requested else None
        if found:
            return found, False
        for candidate in (preferred_default, self.default_model):
            match = match_model(candidate, names) if candidate else None
            if match:
                return match, True
        return names[0], True
