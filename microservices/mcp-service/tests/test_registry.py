"""One registry, two views: REST and MCP (JSON-RPC over streamable HTTP) agree;
governance: unknown and disabled tools, argument validation, audit lines."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import Harness

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def rpc(h: Harness, method: str, params: dict[str, Any] | None = None, host: str | None = None) -> Any:
    headers = {**h.headers(), **MCP_HEADERS}
    if host:
        headers["Host"] = host
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return await h.client.post("/api/mcp/", json=body, headers=headers)


async def test_rest_and_mcp_list_the_same_tools(harness: Harness) -> None:
    r = await harness.client.get("/api/mcp/tools", headers=harness.headers())
    assert r.status_code == 200
    rest = {t["name"]: t for t in r.json()["tools"]}
    assert {"dns_lookup", "ping", "whois", "send_email", "send_webhook", "send_sms", "read_file"} <= set(rest)
    assert {t["category"] for t in rest.values()} == {"network", "notification", "files", "system"}
    init = await rpc(
        harness,
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )
    assert init.status_code == 200, init.text
    listed = await rpc(harness, "tools/list")
    assert listed.status_code == 200, listed.text
    mcp = {t["name"]: t for t in listed.json()["result"]["tools"]}
    assert set(mcp) == set(rest)
    for name, tool in mcp.items():
        assert tool["inputSchema"] == rest[name]["input_schema"]
        assert tool["description"] == rest[name]["description"]


async def test_mcp_tool_call_uses_the_callers_identity(harness: Harness) -> None:
    call = await rpc(harness, "tools/call", {"name": "write_file", "arguments": {"path": "a.txt", "content": "hi"}})
    assert call.status_code == 200, call.text
    result = call.json()["result"]
    assert result.get("isError") in (None, False) and result["structuredContent"]["path"] == "a.txt"
    assert (harness.workspace(1) / "a.txt").read_text() == "hi"
    bad = await rpc(harness, "tools/call", {"name": "read_file", "arguments": {"path": "../2/x"}})
    assert bad.json()["result"]["isError"] is True


async def test_mcp_requires_internal_auth_and_a_known_host(harness: Harness) -> None:
    r = await harness.client.post(
        "/api/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=MCP_HEADERS
    )
    assert r.status_code == 401
    r = await rpc(harness, "tools/list", host="evil.example:8004")
    assert r.status_code == 421


async def test_unknown_tool_is_404_and_bad_arguments_are_refused(harness: Harness) -> None:
    r = await harness.client.post("/api/mcp/tool", json={"name": "nope", "arguments": {}}, headers=harness.headers())
    assert r.status_code == 404 and r.json()["message"]
    out = await harness.call("read_file", path="x", bogus=1)
    assert out["ok"] is False and "bogus" in out["error"]
    out = await harness.call("ping", target="example.com", count=99)
    assert out["ok"] is False and "count" in out["error"]
    r = await harness.client.post("/api/mcp/tool", json={"name": "ping"}, headers={})
    assert r.status_code == 401


async def test_disabled_categories_disappear_from_both_views(make_harness: Any) -> None:
    async with make_harness(mcp_disabled_categories="system, notification") as h:
        names = {t["category"] for t in (await h.client.get("/api/mcp/tools", headers=h.headers())).json()["tools"]}
        assert names == {"network", "files"}
        r = await h.client.post("/api/mcp/tool", json={"name": "system_info", "arguments": {}}, headers=h.headers())
        assert r.status_code == 403


async def test_every_call_is_audited(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="harvis.mcp.audit"):
        await harness.call("write_file", path="secret.txt", content="do not log me")
    rec = [r for r in caplog.records if r.name == "harvis.mcp.audit"][-1]
    assert rec.tool == "write_file" and rec.user_id == 1 and rec.outcome == "ok" and rec.duration_ms >= 0
    assert rec.arguments["path"] == "secret.txt" and "do not log me" not in str(rec.arguments)


async def test_output_cap(make_harness: Any) -> None:
    async with make_harness(mcp_max_output_bytes=2048) as h:
        await h.call("write_file", path="big.txt", content="x" * 5000)
        out = await h.call("read_file", path="big.txt")
        assert out["ok"] is False and "too large" in out["error"]


async def test_process_kill_is_admin_only_and_own_children_only(harness: Harness) -> None:
    import asyncio

    out = await harness.call("process_kill", pid=1)
    assert out["ok"] is False and "administrators" in out["error"]
    out = await harness.call("process_kill", is_admin=True, pid=1)
    assert out["ok"] is False and "started by this service" in out["error"]
    proc = await asyncio.create_subprocess_exec("sleep", "30")
    harness.app.state.services.spawned.add(proc.pid)
    info = await harness.call("process_info", pid=proc.pid)
    assert info["ok"] and info["result"]["started_by_this_service"] is True
    out = await harness.call("process_kill", is_admin=True, pid=proc.pid)
    assert out["ok"] is True, out
    assert await asyncio.wait_for(proc.wait(), 5) == -15
    listing = await harness.call("process_list", limit=5)
    assert listing["ok"] and listing["result"]["processes"]
    sysinfo = await harness.call("system_info")
    assert sysinfo["ok"] and sysinfo["result"]["cpu_count"] >= 1
