"""The pieces behind the caps, directly: the server's sandbox slots, the per-user register,
and the terminal's bounded input buffer."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
from conftest import WORKSPACES

from vibe_coding.capacity import Capacity, Refused, Slots
from vibe_coding.sandbox import BwrapSandbox, Limits, SandboxTarget
from vibe_coding.sandbox.pty import PtyShell

LIMITS = Limits(timeout_s=60, memory_bytes=1 << 30, max_procs=64, cpu_s=60, file_bytes=1 << 20, output_bytes=1 << 16)


async def test_slots_wait_a_bounded_time_and_go_to_the_longest_waiter() -> None:
    slots = Slots(1)
    assert slots.try_take() and not slots.try_take()
    assert await slots.take(0.05) is False  # nobody gives it back in time
    first = asyncio.create_task(slots.take(5))
    await asyncio.sleep(0)
    second = asyncio.create_task(slots.take(5))
    await asyncio.sleep(0)
    slots.give()
    assert await first is True and not second.done()
    second.cancel()  # a waiter that gives up leaves nothing behind
    with pytest.raises(asyncio.CancelledError):
        await second
    slots.give()
    assert slots.free == 1 and slots.try_take()


async def test_capacity_caps_each_user_and_stops_a_session() -> None:
    capacity = Capacity(10, {"execution": 2, "terminal": 1})
    a = capacity.admit(1, "s1", "execution")
    capacity.admit(1, "s2", "execution")
    with pytest.raises(Refused) as refused:
        capacity.admit(1, "s1", "execution")
    assert refused.value.status == 429 and "2 executions" in refused.value.message
    capacity.admit(2, "s3", "execution")  # another user: their own count
    capacity.admit(1, "s9", "terminal")  # another kind: its own cap
    stopped: list[str] = []
    a.on_stop(lambda: stopped.append("a"))

    async def finish_later() -> None:
        await asyncio.sleep(0.1)
        a.release()

    releasing = asyncio.create_task(finish_later())
    assert await capacity.stop_session("s1", timeout_s=5)  # returns once s1's sandbox is released
    assert stopped == ["a"] and a.stopped
    await releasing
    with capacity.admit(1, "s4", "execution") as b:
        assert capacity.count(1, "execution") == 2
    assert b.done.is_set() and capacity.count(1, "execution") == 1


async def test_a_session_is_stopped_even_before_its_sandbox_started() -> None:
    capacity = Capacity(10, {"execution": 2, "terminal": 1})
    run = capacity.admit(1, "s", "execution")
    waiting = asyncio.create_task(capacity.stop_session("s", timeout_s=5))
    await asyncio.sleep(0)
    stopped: list[bool] = []
    run.on_stop(lambda: stopped.append(True))  # registered late: called at once
    run.release()
    assert await waiting and stopped == [True]


async def test_terminal_input_is_buffered_up_to_its_limit() -> None:
    workspace = Path(tempfile.mkdtemp(dir=WORKSPACES))
    os.chmod(workspace, 0o777)  # noqa: S103 - used by a sandbox uid
    target = SandboxTarget(workspace, 201_003, "pty")
    shell = await PtyShell.start(BwrapSandbox(), target, LIMITS, 80, 24, input_limit=16_384)
    try:
        await shell.write(b"sleep 600\r")
        flooding = asyncio.create_task(shell.write(b"x" * (1 << 20)))
        for _ in range(20):  # the pty takes some; the rest waits in the buffer, up to its limit
            await asyncio.sleep(0.1)
            assert shell.pending_bytes <= 16_384
        assert not flooding.done() and shell.pending_bytes > 0
    finally:
        await shell.close()
    await asyncio.wait_for(flooding, 5)  # a writer waiting for room returns once the shell is closed
