"""The parts of harvis_common.llm that need no server: <think> splitting, sizes, the
client factory, the mapping of error answers, the model picker."""

from __future__ import annotations

import pytest

from harvis_common.llm import (
    LLMAuthError,
    LLMError,
    LLMInputTooLong,
    LLMUnavailable,
    ModelInfo,
    ModelNotFound,
    ModelPicker,
    OllamaClient,
    OpenAIClient,
    create_llm_client,
    human_size,
)
from harvis_common.llm.errors import error_for_answer
from harvis_common.llm.think import ThinkSplitter

# ---------------------------------------------------------------- ThinkSplitter


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
def test_think_splitter_any_chunking(size: int) -> None:
    text = "<think>step one</think>The answer <b>is</b> 42"
    splitter = ThinkSplitter()
    content = reasoning = ""
    for i in range(0, len(text), size):
        c, r = splitter.feed(text[i : i + size])
        content, reasoning = content + c, reasoning + r
    c, r = splitter.flush()
    assert (content + c, reasoning + r) == ("The answer <b>is</b> 42", "step one")


def test_think_splitter_unclosed_goes_to_reasoning() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("<think>still thinking") == ("", "still thinking")
    assert splitter.flush() == ("", "")
    plain = ThinkSplitter()
    assert plain.feed("a < b <thi") == ("a < b ", "")
    assert plain.flush() == ("<thi", "")


def test_human_size() -> None:
    assert human_size(4_100_000_000) == "4.1GB"
    assert human_size(253_000_000) == "253MB"
    assert human_size(None) == ""


def test_factory() -> None:
    assert isinstance(create_llm_client("ollama", "http://x:1"), OllamaClient)
    client = create_llm_client("openai", "http://x:1/v1/", api_key="k")
    assert isinstance(client, OpenAIClient) and client.base_url == "http://x:1"
    with pytest.raises(ValueError):
        create_llm_client("nope", "http://x")


@pytest.mark.parametrize(
    ("status", "text", "model", "kind"),
    [
        (400, '{"error": {"message": "maximum context length is 4096 tokens"}}', "m", LLMInputTooLong),
        (413, '{"error": {"code": "context_length_exceeded"}}', None, LLMInputTooLong),
        (401, '{"error": "invalid api key"}', None, LLMAuthError),
        (403, "", "m", LLMAuthError),
        (404, "no such thing", "m", ModelNotFound),
        (404, "no such thing", None, LLMError),  # not about a model
        (500, '{"error": "model \'x\' not found"}', "x", ModelNotFound),
        (502, "bad gateway", None, LLMUnavailable),
        (503, "", "m", LLMUnavailable),
        (500, "", None, LLMError),
    ],
)
def test_error_answers_map_to_their_kind(status: int, text: str, model: str | None, kind: type) -> None:
    err = error_for_answer("openai", status, "Reason", text, model)
    assert type(err) is kind and err.message == str(err)
    assert "openai" in err.message or kind is LLMInputTooLong


def test_an_error_answer_without_a_body_names_the_reason() -> None:
    err = error_for_answer("ollama", 500, "Internal Server Error", "", None)
    assert err.message == "The ollama backend answered 500: Internal Server Error" and err.status == 502


class _ListingClient:
    provider = "ollama"

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.calls = 0

    async def list_models(self) -> list[ModelInfo]:
        self.calls += 1
        return [ModelInfo(name=n) for n in self.names]


async def test_model_picker_falls_back_from_unknown_names_and_caches_the_list() -> None:
    client = _ListingClient(["llama3.2:latest", "qwen3:4b"])
    picker = ModelPicker(client, default_model="qwen3:4b", ttl_s=60)
    assert await picker.pick("llama3.2") == ("llama3.2:latest", False)  # untagged name → :latest
    assert await picker.pick("mistral") == ("qwen3:4b", True)  # the front end's default name
    assert await picker.pick(None, preferred_default="llama3.2") == ("llama3.2:latest", True)
    assert client.calls == 1
    assert await ModelPicker(client, default_model="gone").pick("mistral") == ("llama3.2:latest", True)
    with pytest.raises(LLMError, match="no models"):
        await ModelPicker(_ListingClient([])).pick("x")
