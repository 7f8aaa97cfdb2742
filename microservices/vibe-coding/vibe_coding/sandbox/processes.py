"""Processes by uid, from /proc: before a session's sandbox uid goes back to the pool, nothing
may still run as it (the next session would share its process limit and its files' owner)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def _runs_as(status: bytes, uid: int) -> bool:
    for line in status.splitlines():
        if line.startswith(b"Uid:"):  # real, effective, saved, filesystem
            return str(uid).encode() in line.split()[1:]
    return False


def pids_of(uid: int) -> list[int]:
    """Processes with `uid` as any of their uids."""
    pids = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile
            if _runs_as((PROC / entry.name / "status").read_bytes(), uid):
                pids.append(int(entry.name))
    return pids


def kill_all(uid: int) -> None:
    """SIGKILL every process of `uid`. Each is pinned by a pidfd and its uid checked again
    through it first, so a pid reused meanwhile by another process is never signalled."""
    for pid in pids_of(uid):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        try:
            if _runs_as((PROC / str(pid) / "status").read_bytes(), uid):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(fd)


async def wait_gone(uid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while await asyncio.to_thread(pids_of, uid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def end_all(uid: int, grace_s: float = 5) -> bool:
    """Nothing runs as `uid` any more: what the sandbox's own teardown leaves after `grace_s`
    is killed. False if something survives even that (then the uid must stay reserved)."""
    if await wait_gone(uid, grace_s):
        return True
    await asyncio.to_thread(kill_all, uid)
    return await wait_gone(uid, 5)
