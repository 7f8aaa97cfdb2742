"""The interface every LLM client offers (`LLMClient`), and what the two clients build on
top of the HTTP transport: sampling options under the provider's names, a provider's
stream turned into `ChatChunk`s with the `<think>` reasoning split off, `chat()` as
`chat_stream()` collected, and embedding requests."""

from __future__ import annotations

import abc
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, Protocol

from .errors import LLMError, LLMUnavailable
from .results import ChatChunk, ChatResult, LoadedModel, ModelInfo
from .think import ThinkSplitter
from .transport import Transport

Message = dict[str, Any]  # {"role": "system"|"user"|"assistant", "content": str, "images"?: [base64]}


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


class BaseClient(Transport, abc.ABC):
    """A provider says how its chat request looks (`_chat_body`) and how its stream reads
    (`_chat_pieces`); the rest is here."""

    max_tokens_param = "max_tokens"  # the provider's name for the bound on the answer's length

    @abc.abstractmethod
    def _chat_body(self, messages: Sequence[Message], model: str, params: dict[str, Any]) -> dict[str, Any]:
        """The streamed chat request; `params` are the caller's options, with the temperature
        and the length bound added under the provider's names."""

    @abc.abstractmethod
    def _chat_pieces(self, body: dict[str, Any], model: str) -> AsyncIterator[ChatChunk]:
        """The answer as the backend streams it (text not yet split at <think> tags); the
        last piece has `done` set and the counts. A stream that ends unfinished ends
        without it."""

    async def chat_stream(
        self,
        messages: Sequence[Message],
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatChunk]:
        params = dict(options or {})
        if temperature is not None:
            params["temperature"] = temperature
        if max_tokens is not None:
            params[self.max_tokens_param] = max_tokens
        splitter = ThinkSplitter()
        async with aclosing(self._chat_pieces(self._chat_body(messages, model, params), model)) as pieces:
            async for piece in pieces:
                content, reasoning = splitter.feed(piece.content)
                reasoning = piece.reasoning + reasoning  # a reasoning field of the provider's own
                if piece.done:
                    tail_c, tail_r = splitter.flush()
                    piece.content, piece.reasoning = content + tail_c, reasoning + tail_r
                    yield piece
                    return
                if content or reasoning:
                    yield ChatChunk(content=content, reasoning=reasoning, model=piece.model)
        raise LLMUnavailable(f"The {self.provider} backend ended the answer without finishing it")

    async def chat(self, messages: Sequence[Message], model: str, **kw: Any) -> ChatResult:
        """`chat_stream()` (same arguments) collected."""
        start = time.perf_counter()
        content: list[str] = []
        reasoning: list[str] = []
        last = ChatChunk()
        count = 0
        async for chunk in self.chat_stream(messages, model, **kw):
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

    def _event(self, data: bytes, what: str, model: str) -> dict[str, Any] | None:
        """One JSON event of a chat stream (a `what`: line, event), None when it is not an
        object; a malformed one, or one that reports an error, raises."""
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise LLMError(f"The {self.provider} backend sent a malformed stream {what}") from exc
        if not isinstance(event, dict):
            return None
        if event.get("error"):
            raise self._stream_error(event["error"], model)
        return event

    def _stream_error(self, err: Any, model: str) -> LLMError:
        """The error for a stream's `{"error": ...}` event."""
        return LLMError(f"The {self.provider} backend failed: {err.get('message') if isinstance(err, dict) else err}")

    async def _embeddings(self, path: str, key: str, texts: Sequence[str], model: str) -> list[Any]:
        """The backend's list under `key` in its answer to an embedding request, one item a text."""
        body = await self._post_json(path, {"model": model, "input": list(texts)}, model)
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise LLMError(f"The {self.provider} backend sent no embeddings")
        return items
