"""An interactive shell inside the bubblewrap sandbox on a private pseudo-terminal.

All I/O on the pty's master is non-blocking and driven by the event loop (add_reader /
add_writer): a shell that reads no input must never hold up the service. Input waits in a
buffer of at most `input_limit` bytes; a writer beyond that waits for room (so the terminal
stops reading its client: backpressure down to the client's TCP window). Every byte moved
in either direction marks the terminal active (`last_activity`); that is what its idle
timeout measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
import time

from .base import SANDBOX_PATH, Limits, SandboxTarget
from .bwrap import BwrapSandbox, bwrap_argv, kill_group

READ_CHUNK = 65536


class PtyShell:
    def __init__(self, proc: asyncio.subprocess.Process, master: int, input_limit: int) -> None:
        self.proc = proc
        self.master = master
        self.input_limit = input_limit
        self.closed = False
        self.quota_exceeded = False
        self.last_activity = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._pending = bytearray()  # input the pty has not taken yet
        self._room = asyncio.Event()
        self._room.set()
        self._writer_added = False

    @classmethod
    async def start(
        cls, sandbox: BwrapSandbox, target: SandboxTarget, limits: Limits, cols: int, rows: int, input_limit: int
    ) -> PtyShell:
        master, slave = os.openpty()
        try:
            resize(master, cols, rows)
            env = {"TERM": "xterm-256color", "PS1": r"\w$ ", "SHELL": "/bin/bash"}
            argv = bwrap_argv(
                target,
                limits,
                ["bash", "--noprofile", "--norc", "-i"],
                env=env,
                terminal=True,
                drop_to_uid=sandbox.drop_to_uid,
            )
            # setsid --ctty: a new session (process group = pid, for the kill) whose
            # controlling terminal is the pty, so the shell gets job control and ^C.
            proc = await asyncio.create_subprocess_exec(
                "setsid",
                "--ctty",
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={"PATH": SANDBOX_PATH},
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(proc, master, input_limit)

    def kill(self) -> None:
        kill_group(self.proc)

    def over_quota(self) -> None:
        self.quota_exceeded = True
        self.kill()

    # ------------------------------------------------------------ input

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    async def write(self, data: bytes) -> None:
        """Queue `data` for the shell; waits while the buffer is full. Never blocks the loop."""
        view = memoryview(data)
        while view and not self.closed:
            room = self.input_limit - len(self._pending)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            self._pending += view[:room]
            view = view[room:]
            self._flush()

    def _flush(self) -> None:
        """Hand the pty what it takes now; called again by the loop when it can take more."""
        while self._pending and not self.closed:
            try:
                written = os.write(self.master, self._pending)
            except BlockingIOError:
                break
            except OSError:  # EIO: the shell is gone, nobody will read the rest
                self._pending.clear()
                break
            del self._pending[:written]
            self.last_activity = time.monotonic()
        wanted = bool(self._pending) and not self.closed
        if wanted and not self._writer_added:
            self._loop.add_writer(self.master, self._flush)
        elif not wanted and self._writer_added:
            self._loop.remove_writer(self.master)
        self._writer_added = wanted
        if len(self._pending) < self.input_limit:
            self._room.set()

    def resize(self, cols: int, rows: int) -> None:
        resize(self.master, cols, rows)

    # ------------------------------------------------------------ output

    async def read(self) -> bytes:
        """Output as it comes; b'' once the shell has exited."""
        while not self.closed:
            try:
                data = os.read(self.master, READ_CHUNK)
            except BlockingIOError:
                pass
            except OSError:  # EIO: every slave end is closed, the shell is gone
                return b""
            else:
                if data:
                    self.last_activity = time.monotonic()
                return data
            ready: asyncio.Future[None] = self._loop.create_future()
            self._loop.add_reader(self.master, _wake, ready)
            try:
                await ready
            finally:
                self._loop.remove_reader(self.master)
        return b""

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._writer_added:
            self._loop.remove_writer(self.master)
            self._writer_added = False
        self._pending.clear()
        self._room.set()  # a writer waiting for room returns
        self.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)
        os.close(self.master)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def resize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
