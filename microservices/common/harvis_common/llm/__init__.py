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

Modules: errors (the LLMError kinds), results (what the clients answer), think
(<think> splitting), transport (HTTP: session, retry, timeouts, error mapping), base
(the `LLMClient` interface and what both clients share), ollama, openai, factory
(a client by provider name or from LLMSettings), pick (`ModelPicker`).
"""

from .base import LLMClient
from .errors import LLMAuthError, LLMError, LLMInputTooLong, LLMTimeout, LLMUnavailable, ModelNotFound
from .factory import client_from_settings, create_llm_client
from .ollama import OllamaClient
from .openai import OpenAIClient
from .pick import ModelPicker
from .results import ChatChunk, ChatResult, LoadedModel, ModelInfo, human_size

__all__ = [
    "ChatChunk",
    "ChatResult",
    "LLMAuthError",
    "LLMClient",
    "LLMError",
    "LLMInputTooLong",
    "LLMTimeout",
    "LLMUnavailable",
    "LoadedModel",
    "ModelInfo",
    "ModelNotFound",
    "ModelPicker",
    "OllamaClient",
    "OpenAIClient",
    "client_from_settings",
    "create_llm_client",
    "human_size",
]
