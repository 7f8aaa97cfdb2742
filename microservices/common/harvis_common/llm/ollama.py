"""`OllamaClient`: Ollama's native API — `POST /api/chat` (streamed NDJSON), `GET /api/tags`,
`GET /api/ps`, `POST /api/embed`, unload via `keep_alive: 0`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from .base import BaseClient, Message
from .errors import LLMError, ModelNotFound
from .results import ChatChunk, LoadedModel, ModelInfo


class OllamaClient(BaseClient):
    provider = "ollama"
    max_tokens_param = "num_predict"

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
        return await self._embeddings("/api/embed", "embeddings", texts, model)

    def _chat_body(self, messages: Sequence[Message], model: str, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": [_ollama_message(m) for m in messages], "stream": True}
        if params:
            body["options"] = params
        return body

    async def _chat_pieces(self, body: dict[str, Any], model: str) -> AsyncIterator[ChatChunk]:
        async for line in self._stream_lines("/api/chat", body, model):
            event = self._event(line, "line", model)
            if event is None:
                continue
            msg = event.get("message") or {}
            yield ChatChunk(
                content=str(msg.get("content") or ""),
                reasoning=str(msg.get("thinking") or ""),  # Ollama's own `think` field
                done=bool(event.get("done")),
                model=event.get("model") or model,
                prompt_tokens=event.get("prompt_eval_count"),
                completion_tokens=event.get("eval_count"),
                done_reason=event.get("done_reason"),
            )

    def _stream_error(self, err: Any, model: str) -> LLMError:
        if "not found" in str(err).lower():
            return ModelNotFound(f"Model '{model}' is not available on the ollama backend: {err}")
        return LLMError(f"The ollama backend failed: {err}")


def _ollama_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.get("role", "user"), "content": m.get("content") or ""}
    if m.get("images"):
        out["images"] = [_strip_data_url(i) for i in m["images"]]
    return out


def _strip_data_url(image: str) -> str:
    return image.split(",", 1)[1] if image.startswith("data:") and "," in image else image
