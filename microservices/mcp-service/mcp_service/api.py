"""REST view of the registry: `GET /api/mcp/tools`, `POST /api/mcp/tool`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity
from harvis_common.quotas import QUOTA_RESPONSES, QuotaExceeded

from .registry import DisabledTool, Registry, ToolContext, UnknownTool


class ToolCall(BaseModel):
    name: str = Field(max_length=100)
    arguments: dict[str, Any] = Field(default_factory=dict)


def tool_listing(registry: Registry) -> list[dict[str, Any]]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema, "category": t.category}
        for t in registry.enabled()
    ]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/mcp", tags=["mcp"])

    @router.get("/tools")
    async def list_tools(request: Request, identity: Annotated[Identity, Depends(current_identity)]) -> dict[str, Any]:
        return {"tools": tool_listing(request.app.state.registry)}

    @router.post(
        "/tool",
        responses=QUOTA_RESPONSES,
    )
    async def call_tool(
        body: ToolCall, request: Request, identity: Annotated[Identity, Depends(current_identity)]
    ) -> dict[str, Any]:
        state = request.app.state
        ctx = ToolContext(identity=identity, settings=state.settings, services=state.services)
        try:
            outcome = await state.registry.call(body.name, body.arguments, ctx)
        except UnknownTool as exc:
            raise HTTPException(404, str(exc)) from None
        except DisabledTool as exc:
            raise HTTPException(403, str(exc)) from None
        except QuotaExceeded as exc:
            raise exc.http() from None
        return outcome.as_dict()

    return router
