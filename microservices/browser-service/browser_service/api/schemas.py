"""Request bodies of the browser routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SelectorKind = Literal["css", "xpath"] | None


class SessionIn(BaseModel):
    # Shorter idle timeout for this session (bounded by BROWSER_IDLE_TIMEOUT_S).
    idle_timeout_s: int | None = Field(default=None, ge=1)


class NavigateIn(BaseModel):
    url: str = Field(min_length=1, max_length=8192)
    session_id: str | None = Field(default=None, max_length=64)
    wait_until: Literal["load", "domcontentloaded"] = "load"
    wait_for_selector: str | None = Field(default=None, max_length=2000)
    wait_for_text: str | None = Field(default=None, max_length=2000)
    by: SelectorKind = None
    timeout_s: float | None = Field(default=None, gt=0)
    # Shorter idle timeout for a new session (bounded by BROWSER_IDLE_TIMEOUT_S).
    idle_timeout_s: int | None = Field(default=None, ge=1)


class InteractIn(BaseModel):
    session_id: str = Field(max_length=64)
    action: Literal["click", "type", "press", "scroll", "select", "wait", "extract", "back", "forward", "evaluate"]
    selector: str | None = Field(default=None, max_length=2000)
    by: SelectorKind = None
    text: str | None = Field(default=None, max_length=100_000)
    key: str | None = Field(default=None, max_length=40)
    clear: bool = True
    x: int = 0
    y: int = 0
    to: Literal["top", "bottom"] | None = None
    value: str | None = None
    label: str | None = None
    index: int | None = Field(default=None, ge=0)
    what: Literal["text", "links", "table", "html"] = "text"
    visible: bool = False
    timeout_s: float | None = Field(default=None, ge=0)
    script: str | None = Field(default=None, max_length=100_000)


class AnalyzeIn(BaseModel):
    image: str | None = None
    session_id: str | None = Field(default=None, max_length=64)
    full_page: bool = False
    # A vision model's description too (when SCREEN_DESCRIBE_MODEL is set); null: whenever configured.
    describe: bool | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z_]{3,20}(\+[a-z_]{3,20}){0,3}$")
