"""The MCP view of the registry: the official SDK's low-level server over the
streamable HTTP transport, mounted at `/api/mcp/` in the service's app.

Stateless and JSON responses: every POST carries its own verified identity
(the service middleware put it in the ASGI scope from X-Internal-Auth), so no
MCP session can be carried over from one user to another, and it passes the
gateway like any other request. DNS-rebinding protection stays on, with the
allowed Host values from settings (the gateway sends the service's own
host:port as Host).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import orjson
from mcp.server.lowlevel.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from harvis_common.quotas import QuotaExceeded

from .registry import DisabledTool, Registry, ToolContext, UnknownTool
from .settings import Settings


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_mcp(registry: Registry, settings: Settings, services: Any) -> tuple[Server, Starlette]:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
                for t in registry.enabled()
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        request = ctx.request
        identity = (request.scope.get("state") or {}).get("identity") if request is not None else None
        if identity is None:  # the middleware guarantees it; refuse rather than guess
            return _error("not authenticated")
        tctx = ToolContext(identity=identity, settings=settings, services=services)
        try:
            outcome = await registry.call(params.name, params.arguments or {}, tctx)
        except (UnknownTool, DisabledTool, QuotaExceeded) as exc:
            return _error(str(exc))  # a quota's message says which one and when it resets
        if not outcome.ok:
            return _error(outcome.error or "tool failed")
        structured = outcome.result if isinstance(outcome.result, dict) else {"result": outcome.result}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=orjson.dumps(outcome.result).decode())],
            structured_content=structured,
        )

    server = Server(
        "harvis-mcp",
        version="0.1.0",
        instructions="Harvis tools: network diagnostics, notifications, and files in your own workspace.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=_split(settings.mcp_allowed_hosts),
        allowed_origins=_split(settings.mcp_allowed_origins),
    )
    app = server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,
        json_response=True,
        transport_security=security,
    )
    return server, app


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)
