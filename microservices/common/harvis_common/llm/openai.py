"""`OpenAIClient`: any OpenAI-compatible server (llama.cpp / llama-cpp-python, vLLM,
LM Studio, OpenAI) — `POST /v1/chat/completions` (streamed SSE), `GET /v1/models`,
`POST /v1/embeddings`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from .base import BaseClient, Message
from .results import ChatChunk, LoadedModel, ModelInfo


class OpenAIClient(BaseClient):
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
        data = await self._embeddings("/v1/embeddings", "data", texts, model)
        return [d["embedding"] for d in sorted(data, key=lambda d: d.get("index", 0))]

    def _chat_body(self, messages: Sequence[Message], model: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"model": model, "messages": [_openai_message(m) for m in messages], "stream": True, **params}

    async def _chat_pieces(self, body: dict[str, Any], model: str) -> AsyncIterator[ChatChunk]:
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
            event = self._event(data, "event", model)
            if event is None:
                continue
            served_model = event.get("model") or served_model
            if event.get("usage"):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                yield ChatChunk(
                    content=str(delta.get("content") or ""),
                    reasoning=str(delta.get("reasoning_content") or delta.get("reasoning") or ""),
                    model=served_model,
                )
        else:
            if finish is None:
                if events == 0:
                    # llama-cpp-python's server fails a request it can't serve (a prompt longer than
                    # the context window) after it has sent the stream's headers: the stream is just
                    # empty. Asked once more without streaming, it answers the error properly.
                    await self._post_json("/v1/chat/completions", {**body, "stream": False, "max_tokens": 1}, model)
                return  # unfinished: no last piece
        yield ChatChunk(
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
