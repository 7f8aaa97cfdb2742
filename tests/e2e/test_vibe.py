"""vibe-coding end to end through nginx :9000: sessions, workspace files, the
bubblewrap sandbox against hostile programs, the terminal WebSocket (through
the gateway's WebSocket proxy) and the AI-assist propose/apply flow.

AI assist runs against the fake Ollama (tests/fakes, Ollama's NDJSON wire
format): it echoes the prompt, so file blocks written into the instruction
come back as the model's edits — deterministic, with the real client,
parsing, diffing and applying in between.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, FakeOllamaProcess, Fleet, User

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "product"))  # the shared checks
import sandbox_checks


def new_session(client: httpx.Client, user: User, language: str = "python") -> str:
    return sandbox_checks.new_session(client, user.bearer, language)


def run(client: httpx.Client, user: User, sid: str, **body: Any) -> dict[str, Any]:
    return sandbox_checks.run(client, user.bearer, sid, **body)


# The sandbox's checks (tests/product/sandbox_checks.py; the vibe-coding container and the
# docker backend pass the same ones in tests/product/test_images.py). Natively "the host" is
# this checkout: its code and its secrets.
HOST_FILES = (f"{ROOT}/scripts/fleet.py", f"{ROOT}/.dev/secrets.env")
HOST_DIRS = (str(ROOT),)


def test_session_files_and_three_languages(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_files_and_three_languages(client, user.bearer)


def test_unauthenticated_and_hostile_paths(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_unauthenticated_and_hostile_paths(client, user.bearer)


def test_timeout_kills_a_busy_loop(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_timeout_kills_a_busy_loop(client, user.bearer)


def test_fork_bomb_is_contained(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_fork_bomb_is_contained(client, user.bearer)


def test_two_gb_allocation_fails(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_two_gb_allocation_fails(client, user.bearer)


def test_one_gb_file_write_is_cut_off(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_one_gb_file_write_is_cut_off(client, user.bearer)


def test_network_access_fails(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_network_access_fails(client, user.bearer)


def test_host_files_are_unreadable(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_host_files_are_unreadable(client, user.bearer, HOST_FILES, HOST_DIRS)


def test_sessions_are_invisible_to_other_users(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_sessions_are_invisible_to_other_users(client, user.bearer)


def test_terminal_websocket_runs_a_command(client: httpx.Client, user: User) -> None:
    sandbox_checks.check_terminal_websocket(client, user.bearer)


# ---------------------------------------------------------------- AI assist


@pytest.fixture(scope="module")
def fake_ollama_for_vibe(fleet_proc: Fleet) -> Iterator[str]:
    with FakeOllamaProcess(fleet_proc, "fake-ollama-vibe") as fake:
        try:
            fleet_proc.restart(
                "vibe-coding", {"LLM_PROVIDER": "ollama", "OLLAMA_URL": fake.url, "DEFAULT_MODEL": "fake-llama:latest"}
            )
            yield fake.url
        finally:
            fleet_proc.restart("vibe-coding")


def test_ai_assist_proposes_a_diff_and_applies_it(client: httpx.Client, user: User, fake_ollama_for_vibe: str) -> None:
    sid = new_session(client, user)
    h = user.bearer
    buggy = "def add(a, b):\n    return a - b\n"
    assert client.put(f"/api/vibe/files/{sid}/write", json={"path": "calc.py", "content": buggy}, headers=h).is_success
    instruction = (
        "Fix add and add a test.\n"
        "<<<FILE calc.py\ndef add(a, b):\n    return a + b\n>>>END\n"
        "<<<FILE test_calc.py\nfrom calc import add\nassert add(2, 3) == 5\nprint('ok')\n>>>END"
    )
    r = client.post("/api/vibe/ai/propose", json={"session_id": sid, "instruction": instruction}, headers=h, timeout=60)
    assert r.status_code == 200, r.text
    proposal = r.json()
    assert proposal["files"] == [{"path": "calc.py", "action": "modify"}, {"path": "test_calc.py", "action": "create"}]
    assert "-    return a - b\n+    return a + b\n" in proposal["diff"]
    # Nothing is written before confirmation.
    r = client.get(f"/api/vibe/files/{sid}/read", params={"path": "calc.py"}, headers=h)
    assert r.json()["content"] == buggy
    r = client.post("/api/vibe/ai/apply", json={"session_id": sid, "diff": proposal["diff"]}, headers=h)
    assert r.status_code == 200, r.text
    assert run(client, user, sid, command="python3 test_calc.py")["output"] == "ok\n"
    # The same diff again no longer applies: a conflict, not a silent mis-edit.
    r = client.post("/api/vibe/ai/apply", json={"session_id": sid, "diff": proposal["diff"]}, headers=h)
    assert r.status_code == 409, r.text
