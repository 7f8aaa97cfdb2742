"""What the REST routes depend on: the caller, the tool registry on app.state, and the
context a tool runs in (the caller, the settings, the shared services)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity

from ..registry import Registry, ToolContext

Caller = Annotated[Identity, Depends(current_identity)]


def registry(request: Request) -> Registry:
    return request.app.state.registry


ToolRegistry = Annotated[Registry, Depends(registry)]


def tool_context(request: Request, identity: Caller) -> ToolContext:
    state = request.app.state
    return ToolContext(identity=identity, settings=state.settings, services=state.services)


Context = Annotated[ToolContext, Depends(tool_context)]
