"""Issue 14, multi-user safety: every user is a potential attacker. Each test reproduces one
way a single user could hurt the others (or the service) with an ordinary account, against
the real app under uvicorn, PostgreSQL and the bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from typing import Any

import httpx
from conftest import next_user_id
from live_server import LiveServer, first_event, live_server

from vibe_coding import store as store_module

FLOOD_FRAME = "x" * 65536


def assert_refused(r: httpx.Response, status: int) -> None:
    """A capacity refusal: the status, a Retry-After, and the contract's JSON error."""
    assert r.status_code == status, r.text
    assert int(r.headers["retry-after"]) > 0
    body = r.json()
    assert set(body) == {"detail", "message"} and body["message"], body


async def wait_for_file(server: LiveServer, user: int, sid: str, path: str) -> None:
    async with server.client(user) as c:
        for _ in range(200):
            r = await c.get(f"/api/vibe/files/{sid}/read", params={"path": path})
            if r.status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


async def close_code(ws: Any, send: str | None = None, every_s: float = 0.5, within_s: float = 30) -> int | None:
    """Keep sending `send` (if any) every `every_s` until the server closes; its close code."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            if send is not None:
                await ws.send(send)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.recv(), every_s)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError(f"the terminal was still open after {within_s} s")


# ---------------------------------------------------------------- 1. terminal input


async def test_a_flooded_terminal_does_not_stall_the_service() -> None:
    """A shell that reads no input, flooded with 64 KiB frames: the service keeps answering
    everyone else (the old write busy-waited up to 2 s per frame on the event loop)."""
    async with live_server(vibe_terminal_idle_s=5) as server:
        flooder, bystander = next_user_id(), next_user_id()
        sid, other_sid = await server.session(flooder), await server.session(bystander)
        async with server.terminal(flooder, sid) as ws:
            await ws.send(json.dumps({"type": "input", "data": "sleep 600\r"}))
            well_under_way = asyncio.Event()

            async def flood() -> None:
                for i in range(40):
                    await ws.send(json.dumps({"type": "input", "data": FLOOD_FRAME}))
                    if i == 7:
                        well_under_way.set()

            flooding = asyncio.create_task(flood())
            await asyncio.wait_for(well_under_way.wait(), 30)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as c:
                assert (await c.get("/health")).status_code == 200
            async with server.client(bystander, timeout_s=10) as c:
                r = await c.post("/api/vibe/execute", json={"session_id": other_sid, "command": "echo still here"})
            assert r.status_code == 200 and r.json()["output"] == "still here\n", r.text
            flooding.cancel()


# ---------------------------------------------------------------- 2. per-user caps


async def test_sessions_per_user_are_capped_under_concurrency() -> None:
    async with live_server(vibe_max_sessions_per_user=3) as server:
        user, bystander = next_user_id(), next_user_id()
        async with server.client(user) as c:
            answers = await asyncio.gather(
                *(c.post("/api/vibe/session/create", json={"name": f"s{i}"}) for i in range(10))
            )
            made = [r.json()["session_id"] for r in answers if r.status_code == 200]
            assert len(made) == 3, [r.status_code for r in answers]
            for r in answers:
                if r.status_code != 200:
                    assert_refused(r, 429)
            assert len((await c.get("/api/vibe/sessions")).json()) == 3
            # Deleting one makes room for one; another user is not affected by this one's cap.
            assert (await c.delete(f"/api/vibe/session/{made[0]}")).status_code == 200
            assert (await c.post("/api/vibe/session/create", json={"name": "again"})).status_code == 200
            assert_refused(await c.post("/api/vibe/session/create", json={"name": "over"}), 429)
        assert await server.session(bystander)


async def test_concurrent_executions_per_user_are_capped() -> None:
    async with live_server(vibe_max_concurrent_executions_per_user=2) as server:
        user, bystander = next_user_id(), next_user_id()
        sid, other_sid = await server.session(user), await server.session(bystander)
        body = {"session_id": sid, "command": "sleep 3; echo done", "timeout": 30}
        async with server.client(user) as c, server.client(bystander) as other:
            answers, theirs = await asyncio.gather(
                asyncio.gather(*(c.post("/api/vibe/execute", json=body) for _ in range(6))),
                other.post("/api/vibe/execute", json={"session_id": other_sid, "command": "echo mine"}),
            )
        ran = [r for r in answers if r.status_code == 200]
        assert len(ran) == 2, [r.status_code for r in answers]
        assert all(r.json()["output"] == "done\n" for r in ran)
        for r in answers:
            if r.status_code != 200:
                assert_refused(r, 429)
        assert theirs.status_code == 200 and theirs.json()["output"] == "mine\n", theirs.text


async def test_terminals_per_user_are_capped_under_concurrency() -> None:
    async with live_server(vibe_max_terminals_per_user=2) as server:
        user, bystander = next_user_id(), next_user_id()
        sid, other_sid = await server.session(user), await server.session(bystander)
        conns = await asyncio.gather(*(server.terminal(user, sid) for _ in range(5)))
        try:
            events = await asyncio.gather(*(first_event(ws) for ws in conns))
            opened = [ws for ws, (kind, _) in zip(conns, events, strict=True) if kind == "text"]
            assert len(opened) == 2, events
            for kind, detail in events:
                if kind == "closed":
                    code, reason = detail
                    assert code == 1008 and "2 terminals" in reason, detail
            async with server.terminal(bystander, other_sid) as theirs:
                assert (await first_event(theirs))[0] == "text"
            # Closing one frees its place (once the server has torn its shell down).
            await opened[0].close()
            for _ in range(40):
                async with server.terminal(user, sid) as again:
                    if (await first_event(again))[0] == "text":
                        break
                await asyncio.sleep(0.25)
            else:
                raise AssertionError("closing a terminal did not free its place")
        finally:
            await asyncio.gather(*(ws.close() for ws in conns))


# ---------------------------------------------------------------- 3. terminal idle and lifetime


async def test_pings_do_not_keep_a_terminal_alive() -> None:
    async with live_server(vibe_terminal_idle_s=2) as server:
        user = next_user_id()
        sid = await server.session(user)
        async with server.terminal(user, sid) as ws:
            assert (await first_event(ws))[0] == "text"
            assert await close_code(ws, send=json.dumps({"type": "ping"})) == 4408


async def test_output_counts_as_activity() -> None:
    async with live_server(vibe_terminal_idle_s=2) as server:
        user = next_user_id()
        sid = await server.session(user)
        async with server.terminal(user, sid) as ws:
            # One command, then only output for ~5 s: more than twice the idle time.
            await ws.send(json.dumps({"type": "input", "data": "for i in $(seq 10); do sleep 0.5; echo t$i; done\r"}))
            seen = ""
            while "t10" not in seen:
                seen += await asyncio.wait_for(ws.recv(), 10)
            assert await close_code(ws) == 4408  # and once that stops, the idle timeout closes it


async def test_terminal_lifetime_is_capped_even_when_busy() -> None:
    async with live_server(vibe_terminal_max_lifetime_s=3) as server:
        user = next_user_id()
        sid = await server.session(user)
        async with server.terminal(user, sid) as ws:
            assert await close_code(ws, send=json.dumps({"type": "input", "data": "echo busy\r"})) == 4410


# ---------------------------------------------------------------- 4. waiting for a sandbox slot


async def test_execute_waits_for_a_slot_only_so_long() -> None:
    async with live_server(vibe_max_concurrent=1, vibe_exec_queue_wait_s=1) as server:
        hog, waiter = next_user_id(), next_user_id()
        hog_sid, sid = await server.session(hog), await server.session(waiter)
        async with server.client(hog) as h, server.client(waiter, timeout_s=10) as c:
            hogging = asyncio.create_task(
                h.post(
                    "/api/vibe/execute", json={"session_id": hog_sid, "command": "touch up; sleep 30", "timeout": 60}
                )
            )
            await wait_for_file(server, hog, hog_sid, "up")
            assert_refused(await c.post("/api/vibe/execute", json={"session_id": sid, "command": "echo hi"}), 503)
            # Deleting the hog's session stops its sandbox and frees the slot.
            assert (await h.delete(f"/api/vibe/session/{hog_sid}")).status_code == 200
            assert (await asyncio.wait_for(hogging, 10)).status_code == 409
            r = await c.post("/api/vibe/execute", json={"session_id": sid, "command": "echo hi"})
            assert r.status_code == 200 and r.json()["output"] == "hi\n", r.text


# ---------------------------------------------------------------- 5. sandbox uids


async def test_sessions_whose_ids_collide_mod_60000_get_distinct_uids(monkeypatch: Any) -> None:
    """uids were base + uuid mod 60000: two sessions could run as the same uid."""
    real = store_module.SessionStore._new_id
    colliding = iter([uuid.UUID(int=12_345), uuid.UUID(int=12_345 + 60_000)])
    monkeypatch.setattr(store_module.SessionStore, "_new_id", lambda self: next(colliding, None) or real(self))
    async with live_server(own_database=True) as server:
        user = next_user_id()
        first, second = await server.session(user), await server.session(user)
        assert {first, second} == {str(uuid.UUID(int=12_345)), str(uuid.UUID(int=72_345))}
        assert await server.uid_of(user, first) != await server.uid_of(user, second)


def _procs_of(uid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,cmd=", "-u", str(uid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip()]


async def test_uid_pool_hands_out_distinct_uids_and_reuses_one_only_after_its_session_is_gone() -> None:
    async with live_server(own_database=True, vibe_sandbox_uid_base=300_000, vibe_sandbox_uid_count=4) as server:
        users = [next_user_id() for _ in range(3)]
        answers = await asyncio.gather(*(server.session(u) for u in users for _ in range(2)), return_exceptions=True)
        made = [
            (u, s) for u, s in zip([u for u in users for _ in range(2)], answers, strict=True) if isinstance(s, str)
        ]
        assert len(made) == 4, answers  # the pool has 4 uids
        async with server.client(users[0]) as c:
            assert_refused(await c.post("/api/vibe/session/create", json={"name": "one too many"}), 503)
        uids = [await server.uid_of(u, s) for u, s in made]
        assert len(set(uids)) == 4 and all(300_000 <= uid < 300_004 for uid in uids), uids
        # A session busy in its sandbox is deleted: the uid comes back only once nothing runs as it.
        (owner, sid), uid = made[0], uids[0]
        async with server.client(owner) as c:
            busy = asyncio.create_task(
                c.post("/api/vibe/execute", json={"session_id": sid, "command": "touch up; sleep 60", "timeout": 90})
            )
            await wait_for_file(server, owner, sid, "up")
            assert _procs_of(uid)
            assert (await c.delete(f"/api/vibe/session/{sid}")).status_code == 200
            assert _procs_of(uid) == []
            assert (await asyncio.wait_for(busy, 10)).status_code == 409
        newcomer = next_user_id()
        fresh = await server.session(newcomer)
        assert await server.uid_of(newcomer, fresh) == uid


async def test_deleting_a_session_closes_its_terminal_first() -> None:
    async with live_server() as server:
        user = next_user_id()
        sid = await server.session(user)
        async with server.terminal(user, sid) as ws:
            assert (await first_event(ws))[0] == "text"
            async with server.client(user) as c:
                assert (await c.delete(f"/api/vibe/session/{sid}")).status_code == 200
            assert await close_code(ws, within_s=5) == 4404
        async with server.terminal(user, sid) as ws:  # and it cannot be opened again
            assert (await first_event(ws))[1][0] == 4404
