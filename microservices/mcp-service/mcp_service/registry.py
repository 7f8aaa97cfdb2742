"""The one tool registry behind both views: MCP (`/api/mcp/`) and REST
(`GET /api/mcp/tools`, `POST /api/mcp/tool`).

A tool is a name, a description, a category, a pydantic model for its
arguments (whose JSON schema is what clients see) and an async handler
`(args, ctx) -> JSON-able result`. `Registry.call` is the single entry point:
it checks the category is enabled, validates the arguments, runs the handler
under the tool's time limit, caps the result size and writes one audit line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from harvis_common.internal_auth import Identity
from harvis_common.quotas import QuotaExceeded

from .settings import Settings

audit_log = logging.getLogger("harvis.mcp.audit")

CATEGORIES = ("network", "notification", "files", "system")


class ToolError(Exception):
    """A refusal or failure the caller should see (bad target, path outside
    the workspace, SMTP not configured...). Never carries secrets."""


class Args(BaseModel):
    """Base of every tool's argument model: unknown arguments are refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ToolContext:
    identity: Identity
    settings: Settings
    services: Any  # mcp_service.app.Services: shared clients and state

    @property
    def workspace(self) -> Path:
        """The caller's workspace root (created on first use), resolved."""
        root = Path(self.settings.mcp_workspace_dir).resolve() / str(int(self.identity.user_id))
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return root.resolve()


Handler = Callable[[Any, ToolContext], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    category: str
    args: type[Args]
    handler: Handler
    timeout_s: float | None = None  # None: the service default

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        schema.setdefault("properties", {})
        schema["type"] = "object"
        return schema


@dataclass
class Outcome:
    name: str
    ok: bool
    result: Any = None
    error: str | None = None
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "ok": self.ok, "duration_ms": self.duration_ms}
        if self.ok:
            body["result"] = self.result
        else:
            body["error"] = self.error
        return body


class UnknownTool(LookupError):
    pass


class DisabledTool(PermissionError):
    pass


@dataclass
class Registry:
    settings: Settings
    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, tool: Tool) -> None:
        if tool.name in self.tools:
            raise ValueError(f"duplicate tool {tool.name}")
        if tool.category not in CATEGORIES:
            raise ValueError(f"unknown category {tool.category}")
        self.tools[tool.name] = tool

    @property
    def disabled(self) -> frozenset[str]:
        return frozenset(c.strip().lower() for c in self.settings.mcp_disabled_categories.split(",") if c.strip())

    def enabled(self) -> list[Tool]:
        off = self.disabled
        return [t for t in self.tools.values() if t.category not in off]

    def listing(self) -> list[dict[str, Any]]:
        """The enabled tools as the REST view lists them."""
        return [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema, "category": t.category}
            for t in self.enabled()
        ]

    def get(self, name: str) -> Tool:
        tool = self.tools.get(name)
        if tool is None:
            raise UnknownTool(f"unknown tool {name!r}")
        if tool.category in self.disabled:
            raise DisabledTool(f"tool {name!r} is disabled (category {tool.category!r})")
        return tool

    async def call(self, name: str, arguments: Any, ctx: ToolContext) -> Outcome:
        """Run a tool; UnknownTool/DisabledTool and QuotaExceeded (after its audit
        line) propagate, every other failure is an Outcome with ok=False."""
        tool = self.get(name)
        start = time.perf_counter()
        outcome = Outcome(name=name, ok=False)
        over_quota: QuotaExceeded | None = None
        try:
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise ToolError("arguments must be a JSON object")
            try:
                args = tool.args.model_validate(arguments)
            except ValidationError as exc:
                raise ToolError("invalid arguments: " + _summarise(exc)) from None
            timeout = min(tool.timeout_s or self.settings.mcp_tool_timeout_s, self.settings.mcp_tool_timeout_s)
            try:
                async with asyncio.timeout(timeout):
                    result = await tool.handler(args, ctx)
            except TimeoutError:
                raise ToolError(f"tool timed out after {timeout:g} s") from None
            size = len(orjson.dumps(result, default=str))
            if size > self.settings.mcp_max_output_bytes:
                raise ToolError(f"result too large ({size} bytes > {self.settings.mcp_max_output_bytes})")
            outcome.ok, outcome.result = True, result
        except ToolError as exc:
            outcome.error = str(exc)
        except QuotaExceeded as exc:
            outcome.error, over_quota = str(exc), exc
        except Exception:
            audit_log.exception("tool crashed", extra={"tool": name})
            outcome.error = "the tool failed unexpectedly"
        outcome.duration_ms = round((time.perf_counter() - start) * 1000, 2)
        audit_log.info(
            "tool call",
            extra={
                "user_id": ctx.identity.user_id,
                "username": ctx.identity.username,
                "tool": name,
                "arguments": summarise_arguments(arguments),
                "outcome": "ok" if outcome.ok else "quota" if over_quota else "error",
                "error": outcome.error,
                "duration_ms": outcome.duration_ms,
            },
        )
        if over_quota is not None:
            raise over_quota
        return outcome


_SENSITIVE_ARGS = frozenset({"content", "body", "payload", "message", "text", "data"})


def summarise_arguments(arguments: Any, limit: int = 120) -> dict[str, str] | str:
    """Argument names with short value previews (bodies only by size), for the audit log."""
    if not isinstance(arguments, dict):
        return f"<{type(arguments).__name__}>"
    out: dict[str, str] = {}
    for key, value in list(arguments.items())[:20]:
        key = str(key)[:40]
        if key in _SENSITIVE_ARGS:
            out[key] = f"<{len(orjson.dumps(value, default=str))} bytes>"
        else:
            text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
            out[key] = text if len(text) <= limit else text[:limit] + "…"
    return out


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts)
