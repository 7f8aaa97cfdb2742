"""The workspace's path confinement, and AI assist's diff making and applying."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vibe_coding import assist
from vibe_coding.assist import AssistError
from vibe_coding.workspace import Workspace, WorkspaceError, clean_path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(tmp_path / "root" / "1" / "s", max_file_bytes=1000, max_total_bytes=100_000)
    w.create()
    (tmp_path / "outside.txt").write_text("host secret")
    (tmp_path / "outdir").mkdir()
    return w


def status(call, *args, **kw) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkspaceError) as err:
        call(*args, **kw)
    return err.value.status


@pytest.mark.parametrize("raw", ["..", "../x", "a/../../b", "a\x00b", "x/" * 600])
def test_clean_path_refuses_escapes(raw: str) -> None:
    with pytest.raises(WorkspaceError):
        clean_path(raw)


def test_clean_path_normalises() -> None:
    assert clean_path("/a//b/./c") == ("a", "b", "c")
    assert clean_path("a\\b") == ("a", "b")
    assert clean_path("/", allow_root=True) == ()


def test_symlinks_to_the_host_are_never_followed(ws: Workspace, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside.txt", ws.root / "leak")
    os.symlink(tmp_path / "outdir", ws.root / "dirlink")
    assert status(ws.read, "leak") == 400
    assert status(ws.write, "leak", b"overwritten") == 400
    assert status(ws.read, "dirlink/x") == 400
    assert status(ws.write, "dirlink/new.txt", b"x") == 400
    assert status(ws.mkdir, "dirlink/sub") == 400
    assert status(ws.move, "dirlink/x", "y") == 400
    ws.move("leak", "moved-link")  # renames the link itself
    ws.delete("moved-link")
    ws.delete("dirlink")
    assert (tmp_path / "outside.txt").read_text() == "host secret"
    assert (tmp_path / "outdir").is_dir() and not list((tmp_path / "outdir").iterdir())


def test_a_workspace_root_swapped_for_a_link_is_refused(tmp_path: Path) -> None:
    w = Workspace(tmp_path / "r" / "1" / "s")
    w.root.parent.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", w.root)
    assert status(w.read, "x") in (400, 403)
    assert status(w.write, "x", b"y") in (400, 403)
    w.destroy()  # removes the link, not what it points at
    assert (tmp_path / "elsewhere").is_dir()


def test_limits_and_conflicts(ws: Workspace, tmp_path: Path) -> None:
    probe = tmp_path / "root" / "probe"
    probe.write_bytes(b"x" * 1000)
    unit = max(probe.stat().st_blocks * 512, 512)  # what a 1000-byte file costs on this disk
    ws.max_total_bytes = 3 * unit + 100
    assert status(ws.write, "big", b"x" * 1001) == 413
    ws.write("a", b"x" * 1000)
    ws.write("b", b"x" * 1000)
    ws.write("c", b"x" * 900)
    assert status(ws.write, "d", b"x" * 200) == 413  # the workspace total
    ws.write("c", b"x" * 1000)  # replacing counts the old size out
    assert status(ws.write, "a", b"y", exclusive=True) == 409
    assert status(ws.move, "a", "b") == 409
    assert status(ws.move, "nope", "z") == 404
    ws.mkdir("dir")
    assert status(ws.move, "dir", "dir/inside") == 400
    assert status(ws.mkdir, "dir") == 409
    assert status(ws.delete, "nope") == 404


def test_tree_lists_without_following_links(ws: Workspace, tmp_path: Path) -> None:
    ws.write("src/app.py", b"print()")
    os.symlink(tmp_path / "outdir", ws.root / "link")
    tree = ws.tree()
    assert [(e["name"], e["type"]) for e in tree] == [("src", "directory"), ("link", "symlink")]
    assert tree[0]["children"] == [{"name": "app.py", "path": "src/app.py", "type": "file", "size": 7}]


# ---------------------------------------------------------------- assist


def test_model_reply_becomes_a_diff_that_applies(ws: Workspace) -> None:
    ws.write("app.py", b"def add(a, b):\n    return a - b\n\nprint(add(1, 2))\n")
    ws.write("old.txt", b"remove me\n")
    reply = (
        "Fixed the bug and added a test.\n"
        "<<<FILE app.py\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\n>>>END\n"
        "<<<FILE tests/test_app.py\n```python\nfrom app import add\nassert add(1, 2) == 3\n```\n>>>END\n"
        "<<<DELETE old.txt>>>\n"
    )
    edits = assist.parse_reply(reply)
    assert [e.path for e in edits] == ["app.py", "tests/test_app.py", "old.txt"]
    assert assist.explanation(reply) == "Fixed the bug and added a test."
    diff, changed = assist.diff_for_edits(ws, edits)
    assert changed == [
        {"path": "app.py", "action": "modify"},
        {"path": "tests/test_app.py", "action": "create"},
        {"path": "old.txt", "action": "delete"},
    ]
    assert "-    return a - b\n+    return a + b\n" in diff and "--- /dev/null\n+++ b/tests/test_app.py" in diff
    assist.apply_diff(ws, diff)
    assert ws.read("app.py").decode().splitlines()[1] == "    return a + b"
    assert ws.read("tests/test_app.py") == b"from app import add\nassert add(1, 2) == 3\n"
    assert not ws.exists("old.txt")


def test_a_reply_naming_a_path_outside_is_refused() -> None:
    with pytest.raises(WorkspaceError):
        assist.parse_reply("<<<FILE ../../etc/cron.d/x\n* * * * * root sh\n>>>END\n")


def test_stale_or_malformed_diffs_are_refused_and_nothing_is_written(ws: Workspace) -> None:
    ws.write("a.txt", b"one\ntwo\nthree\n")
    ws.write("b.txt", b"bee\n")
    good_b = "--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-bee\n+BEE\n"
    stale_a = "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-TWO\n+2\n"
    with pytest.raises(AssistError) as err:
        assist.apply_diff(ws, good_b + stale_a)
    assert err.value.status == 409
    assert ws.read("b.txt") == b"bee\n"  # all or nothing
    for bad in (
        "just words",
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n one\n",  # truncated hunk
        "--- a/a.txt\n+++ b/c.txt\n@@ -1 +1 @@\n-one\n+1\n",  # rename
        "--- /dev/null\n+++ /abs/../../x\n@@ -0,0 +1 @@\n+x\n",
    ):
        with pytest.raises(AssistError) as err:
            assist.apply_diff(ws, bad)
        assert err.value.status == 400, bad
    with pytest.raises(AssistError) as err:
        assist.apply_diff(ws, "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+x\n")
    assert err.value.status == 409  # creating what exists


def test_diff_round_trip_without_trailing_newline(ws: Workspace) -> None:
    ws.write("n.txt", b"a\nb")
    diff = assist.unified_diff("n.txt", "a\nb", "a\nc")
    assert "\\ No newline at end of file" in diff
    assist.apply_diff(ws, diff)
    assert ws.read("n.txt") == b"a\nc"
    diff = assist.unified_diff("n.txt", "a\nc", "a\nc\nd\n")
    assist.apply_diff(ws, diff)
    assert ws.read("n.txt") == b"a\nc\nd\n"


def test_prompt_carries_instruction_and_files() -> None:
    prompt = assist.build_prompt("rename x", {"m.py": "x = 1"})
    assert "Instruction: rename x" in prompt and "<<<FILE m.py\nx = 1\n>>>END" in prompt
