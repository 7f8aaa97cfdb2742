"""Process and system tools (psutil). Listing and inspecting are open to every
user; killing is for admins only, and only for processes this service started
(its own subprocesses, e.g. a running ping)."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import time
from typing import Any

import psutil
from pydantic import Field

from ..registry import Args, Registry, Tool, ToolContext, ToolError

_FIELDS = ["pid", "ppid", "name", "username", "status", "create_time", "num_threads"]


def _proc_summary(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "pid": info.get("pid"),
        "ppid": info.get("ppid"),
        "name": info.get("name"),
        "user": info.get("username"),
        "status": info.get("status"),
        "threads": info.get("num_threads"),
        "started": info.get("create_time"),
    }


class ProcessListArgs(Args):
    name_contains: str | None = Field(
        default=None, max_length=100, description="Only processes whose name contains this"
    )
    limit: int = Field(default=100, ge=1, le=1000)


def _list(ctx: ToolContext, args: ProcessListArgs) -> dict[str, Any]:
    out = []
    total = 0
    for proc in psutil.process_iter(_FIELDS):
        info = proc.info
        if args.name_contains and args.name_contains.lower() not in str(info.get("name") or "").lower():
            continue
        total += 1
        if len(out) < args.limit:
            out.append(_proc_summary(info))
    return {"processes": out, "total": total, "truncated": total > len(out)}


class PidArgs(Args):
    pid: int = Field(ge=1, le=2**22, description="Process id")


def _info(ctx: ToolContext, args: PidArgs) -> dict[str, Any]:
    try:
        proc = psutil.Process(args.pid)
        with proc.oneshot():
            info = _proc_summary(proc.as_dict(_FIELDS))
            mem = proc.memory_info()
            info.update(
                rss_bytes=mem.rss,
                vms_bytes=mem.vms,
                cpu_times=proc.cpu_times()._asdict(),
                started_by_this_service=args.pid in ctx.services.spawned,
            )
    except psutil.NoSuchProcess:
        raise ToolError(f"no process {args.pid}") from None
    except psutil.AccessDenied:
        raise ToolError(f"access to process {args.pid} denied") from None
    return info


async def process_kill(args: PidArgs, ctx: ToolContext) -> dict[str, Any]:
    if not ctx.identity.is_admin:
        raise ToolError("only administrators may kill processes")
    if args.pid not in ctx.services.spawned or args.pid == os.getpid():
        raise ToolError("only processes started by this service can be killed")
    try:
        proc = psutil.Process(args.pid)
        if proc.ppid() != os.getpid():
            raise ToolError("only processes started by this service can be killed")
        proc.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        ctx.services.spawned.discard(args.pid)
        raise ToolError(f"no process {args.pid}") from None
    return {"pid": args.pid, "signal": "SIGTERM", "sent": True}


class SystemInfoArgs(Args):
    pass


def _system(ctx: ToolContext, args: SystemInfoArgs) -> dict[str, Any]:
    vm = psutil.virtual_memory()
    disk = psutil.disk_usage(str(ctx.workspace))
    load = os.getloadavg()
    return {
        "os": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": psutil.cpu_count(),
        "load_average": {"1m": load[0], "5m": load[1], "15m": load[2]},
        "memory": {"total": vm.total, "available": vm.available, "percent": vm.percent},
        "workspace_disk": {"total": disk.total, "free": disk.free, "percent": disk.percent},
        "uptime_s": round(time.time() - psutil.boot_time()),
    }


def _threaded(fn: Any) -> Any:
    async def run(args: Any, ctx: ToolContext) -> Any:
        return await asyncio.to_thread(fn, ctx, args)

    return run


def register(registry: Registry) -> None:
    registry.add(
        Tool(
            "process_list",
            "List running processes (pid, name, user, status).",
            "system",
            ProcessListArgs,
            _threaded(_list),
        )
    )
    registry.add(
        Tool("process_info", "Details of one process: memory, CPU times, threads.", "system", PidArgs, _threaded(_info))
    )
    registry.add(
        Tool(
            "process_kill",
            "Terminate a process this service started (administrators only).",
            "system",
            PidArgs,
            process_kill,
        )
    )
    registry.add(
        Tool(
            "system_info",
            "OS, CPU, memory, load and workspace disk usage.",
            "system",
            SystemInfoArgs,
            _threaded(_system),
        )
    )
