"""Request bodies of the REST view."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ToolCall(BaseModel):
    name: str = Field(max_length=100)
    arguments: dict[str, Any] = Field(default_factory=dict)
