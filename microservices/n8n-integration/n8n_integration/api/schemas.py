"""Request bodies of the routes (the answers are plain dicts, shaped in views.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator


class CreateBody(BaseModel):
    workflow: dict[str, Any] | None = None
    prompt: str | None = Field(default=None, min_length=3, max_length=4000)
    name: str | None = Field(default=None, max_length=128)
    activate: bool = True

    @model_validator(mode="after")
    def _one(self) -> CreateBody:
        if (self.workflow is None) == (self.prompt is None):
            raise ValueError("give either 'workflow' (n8n workflow JSON) or 'prompt' (a description)")
        return self


class ExecuteBody(BaseModel):
    workflow_id: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] | list[Any] | None = None
    wait: bool = True


class OptimizeBody(BaseModel):
    workflow_id: str | None = Field(default=None, min_length=1, max_length=64)
    workflow: dict[str, Any] | None = None
    use_llm: bool = True

    @model_validator(mode="after")
    def _one(self) -> OptimizeBody:
        if (self.workflow is None) == (self.workflow_id is None):
            raise ValueError("give either 'workflow_id' or 'workflow'")
        return self
