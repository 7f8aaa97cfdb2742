"""What the clients answer: model lists, streamed chunks, collected results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
