"""The hostile suites in-process: >= 100 path payloads (traversal, absolute,
encoded, control characters, planted symlinks to /etc and outside, sibling-prefix
directories), archives with `..`, absolute members, links, specials and bombs,
and injection into the network tools. Zero escapes: every one is refused with a
clear error and nothing outside the workspace changes."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness
from hostile import BAD_URLS, INJECTION, NON_PUBLIC, PATH_PAYLOADS, SYMLINKS, THROUGH_SYMLINKS, tar_with, zip_with


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Every file under root except the user's own workspace, with a digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if Path(dirpath) == skip or Path(dirpath).is_relative_to(skip):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[str(p)] = "dir-or-link"
    return out


@pytest.fixture
def planted(harness: Harness, tmp_path: Path) -> Path:
    ws_root = Path(harness.settings.mcp_workspace_dir)
    mine = ws_root / "1"
    mine.mkdir(parents=True, exist_ok=True)
    (mine / "notes.txt").write_text("mine")
    (mine / "a" / "b").mkdir(parents=True)
    (mine / "subdir").mkdir()
    for sibling in ("1_evil", "10", "1evil", "2"):
        (ws_root / sibling).mkdir(parents=True, exist_ok=True)
        (ws_root / sibling / "secret.txt").write_text(f"secret of {sibling}")
        (ws_root / sibling / "notes.txt").write_text(f"notes of {sibling}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside secret")
    for name, target in SYMLINKS.items():
        link = mine / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.format(outside=outside, sibling=ws_root / "1_evil"))
    return mine


def calls_for(path: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("read_file", {"path": path}),
        ("write_file", {"path": path, "content": "pwned"}),
        ("append_file", {"path": path, "content": "pwned"}),
        ("list_files", {"path": path}),
        ("file_info", {"path": path}),
        ("delete_file", {"path": path, "recursive": True}),
        ("move_file", {"source": "notes.txt", "destination": path}),
        ("move_file", {"source": path, "destination": "stolen"}),
        ("copy_file", {"source": path, "destination": "stolen"}),
        ("copy_file", {"source": "notes.txt", "destination": path}),
        ("search_files", {"path": path, "text": "secret"}),
        ("archive_create", {"paths": [path], "destination": "out.zip"}),
        ("archive_create", {"paths": ["notes.txt"], "destination": path}),
        ("archive_extract", {"archive": path}),
    ]


async def test_path_payloads_never_escape(harness: Harness, planted: Path, tmp_path: Path) -> None:
    payloads = PATH_PAYLOADS + THROUGH_SYMLINKS
    assert len(payloads) >= 100
    before = snapshot(tmp_path, planted)
    passwd = Path("/etc/passwd").read_bytes()  # noqa: ASYNC240
    refused = 0
    for payload in payloads:
        for tool, args in calls_for(payload):
            out = await harness.call(tool, **args)
            assert out["ok"] is False, (tool, payload, out)
            assert out["error"] and "unexpectedly" not in out["error"], (tool, payload, out)
            assert "pwned" not in str(out) and "secret of" not in str(out) and "root:" not in str(out)
            refused += 1
    assert refused >= 100 * 14
    assert snapshot(tmp_path, planted) == before, "something outside the workspace changed"
    assert Path("/etc/passwd").read_bytes() == passwd  # noqa: ASYNC240
    assert (planted / "notes.txt").read_text() == "mine"
    assert not (planted / "stolen").exists() and not (planted / "out.zip").exists()


async def test_sibling_prefix_workspaces_are_separate(harness: Harness, planted: Path) -> None:
    # user 1's "." is <ws>/1, never <ws>/1_evil or <ws>/10 (string-prefix bugs).
    listing = await harness.call("list_files", path=".")
    names = {e["name"] for e in listing["result"]["entries"]}
    assert "notes.txt" in names and "secret.txt" not in names
    other = await harness.call("read_file", user_id=10, path="notes.txt")
    assert other["ok"] and other["result"]["content"] == "notes of 10"
    found = await harness.call("search_files", text="secret")
    assert found["ok"] and found["result"]["results"] == []


async def test_benign_paths_work(harness: Harness, planted: Path) -> None:
    assert (await harness.call("write_file", path="dir/sub/x.txt", content="hello"))["ok"]
    assert (await harness.call("append_file", path="dir/sub/x.txt", content=" world"))["ok"]
    read = await harness.call("read_file", path="dir/sub/x.txt")
    assert read["result"]["content"] == "hello world"
    assert (await harness.call("copy_file", source="dir/sub/x.txt", destination="copy.txt"))["ok"]
    assert (await harness.call("move_file", source="copy.txt", destination="dir/moved.txt"))["ok"]
    info = await harness.call("file_info", path="dir/moved.txt")
    assert info["result"]["sha256"] == hashlib.sha256(b"hello world").hexdigest()
    found = await harness.call("search_files", name_pattern="*.txt", text="world")
    assert {r["path"] for r in found["result"]["results"]} == {"dir/sub/x.txt", "dir/moved.txt"}
    binary = base64.b64encode(bytes(range(256))).decode()
    assert (await harness.call("write_file", path="bin.dat", content=binary, encoding="base64"))["ok"]
    assert (await harness.call("read_file", path="bin.dat", encoding="base64"))["result"]["content"] == binary
    # Names that look odd but are plain file names inside the workspace.
    for odd in ("..foo", "foo..", "a..b/c", "%41.txt", "\uff0e\uff0e", "-rf"):
        out = await harness.call("write_file", path=odd, content="ok")
        assert out["ok"], (odd, out)
        assert (planted / odd).is_file()
    archived = await harness.call("archive_create", paths=["dir"], destination="dir.tar.gz", format="tar.gz")
    assert archived["ok"] and archived["result"]["files"] == 2
    extracted = await harness.call("archive_extract", archive="dir.tar.gz", destination="restored")
    assert extracted["ok"], extracted
    assert (planted / "restored" / "dir" / "moved.txt").read_text() == "hello world"
    zipped = await harness.call("archive_create", paths=["dir/sub/x.txt"], destination="x.zip")
    assert zipped["ok"]
    assert (await harness.call("archive_extract", archive="x.zip", destination="unz"))["ok"]
    assert (planted / "unz" / "dir" / "sub" / "x.txt").read_text() == "hello world"
    assert (await harness.call("delete_file", path="restored", recursive=True))["ok"]
    assert not (planted / "restored").exists()


# ---------------------------------------------------------------- archives


LINK = stat.S_IFLNK | 0o777
REG = stat.S_IFREG | 0o644
HOSTILE_ZIPS = {
    "dotdot": [("../evil.txt", b"x", None)],
    "dotdot_deep": [("a/../../../evil.txt", b"x", None)],
    "absolute": [("/tmp/evil.txt", b"x", None)],
    "absolute_etc": [("/etc/cron.d/evil", b"x", None)],
    "backslash": [("..\\evil.txt", b"x", None)],
    "drive": [("C:/evil.txt", b"x", None)],
    "symlink_etc": [("link", b"/etc", LINK)],
    "symlink_then_write": [("link", b"/tmp", LINK), ("link/evil.txt", b"x", REG)],
    "symlink_relative": [("up", b"../../..", LINK)],
    "fifo": [("pipe", b"", stat.S_IFIFO | 0o644)],
}
HOSTILE_TARS = {
    "dotdot": [("../evil.txt", "file", "x")],
    "dotdot_deep": [("a/b/../../../evil.txt", "file", "x")],
    "absolute": [("/tmp/evil.txt", "file", "x")],
    "symlink_etc": [("link", "sym", "/etc")],
    "symlink_then_write": [("link", "sym", "/tmp"), ("link/evil.txt", "file", "x")],
    "symlink_relative": [("up", "sym", "../../..")],
    "hardlink_passwd": [("passwd", "hard", "/etc/passwd")],
    "hardlink_relative": [("h", "hard", "../../secret.txt")],
    "chardev": [("null", "chr", "")],
    "fifo": [("pipe", "fifo", "")],
    "dir_dotdot": [("../evil_dir", "dir", "")],
}


async def _upload(harness: Harness, name: str, data: bytes) -> None:
    out = await harness.call("write_file", path=name, content=base64.b64encode(data).decode(), encoding="base64")
    assert out["ok"], out


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIPS))
async def test_hostile_zip_is_refused(harness: Harness, planted: Path, tmp_path: Path, case: str) -> None:
    await _upload(harness, f"{case}.zip", zip_with(HOSTILE_ZIPS[case]))
    before = snapshot(tmp_path, planted)
    out = await harness.call("archive_extract", archive=f"{case}.zip", destination="x")
    assert out["ok"] is False and out["error"], out
    assert snapshot(tmp_path, planted) == before
    assert not Path("/tmp/evil.txt").exists() and not (planted.parent / "evil.txt").exists()  # noqa: ASYNC240


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
async def test_hostile_tar_is_refused(harness: Harness, planted: Path, tmp_path: Path, case: str) -> None:
    await _upload(harness, f"{case}.tar.gz", tar_with(HOSTILE_TARS[case]))
    before = snapshot(tmp_path, planted)
    out = await harness.call("archive_extract", archive=f"{case}.tar.gz", destination="x")
    assert out["ok"] is False and out["error"], out
    assert snapshot(tmp_path, planted) == before
    assert not Path("/tmp/evil.txt").exists() and not (planted.parent / "evil.txt").exists()  # noqa: ASYNC240


async def test_archive_bombs_and_member_counts_are_capped(make_harness: Any) -> None:
    async with make_harness(mcp_archive_max_bytes=1_000_000, mcp_archive_max_members=50) as h:
        zeros = b"\0" * 5_000_000
        await _upload(h, "bomb.zip", zip_with([("zeros.bin", zeros, None)]))
        out = await h.call("archive_extract", archive="bomb.zip")
        assert out["ok"] is False and "size limit" in out["error"]
        await _upload(h, "bomb.tar.gz", tar_with([("zeros.bin", "file", zeros)]))
        out = await h.call("archive_extract", archive="bomb.tar.gz")
        assert out["ok"] is False and "size limit" in out["error"]
        many = zip_with([(f"f{i}.txt", b"x", None) for i in range(60)])
        await _upload(h, "many.zip", many)
        out = await h.call("archive_extract", archive="many.zip")
        assert out["ok"] is False and "too many" in out["error"]
        assert not (h.workspace() / "zeros.bin").exists() and not (h.workspace() / "f0.txt").exists()


async def test_extract_does_not_overwrite_unless_asked(harness: Harness, planted: Path) -> None:
    await _upload(harness, "n.zip", zip_with([("notes.txt", b"replaced", None)]))
    out = await harness.call("archive_extract", archive="n.zip")
    assert out["ok"] is False and "exists" in out["error"]
    assert (planted / "notes.txt").read_text() == "mine"
    out = await harness.call("archive_extract", archive="n.zip", overwrite=True)
    assert out["ok"] and (planted / "notes.txt").read_text() == "replaced"


# ---------------------------------------------------------------- network injection


@pytest.mark.parametrize("payload", INJECTION)
async def test_network_targets_are_validated(harness: Harness, payload: str) -> None:
    calls = [
        ("ping", {"target": payload, "count": 1}),
        ("whois", {"query": payload}),
        ("dns_lookup", {"name": payload}),
        ("reverse_dns", {"ip": payload}),
        ("tcp_port_check", {"host": payload, "ports": [80]}),
        ("ssl_check", {"host": payload}),
    ]
    for tool, args in calls:
        out = await harness.call(tool, **args)
        assert out["ok"] is False and out["error"], (tool, payload, out)
    assert not Path("/tmp/pwned").exists()  # noqa: ASYNC240


@pytest.mark.parametrize("target", NON_PUBLIC)
async def test_non_public_targets_are_refused(harness: Harness, target: str) -> None:
    for tool, args in (
        ("ping", {"target": target, "count": 1}),
        ("tcp_port_check", {"host": target, "ports": [22]}),
        ("ssl_check", {"host": target}),
    ):
        out = await harness.call(tool, **args)
        assert out["ok"] is False and "not allowed" in out["error"], (tool, target, out)


@pytest.mark.parametrize("url", BAD_URLS)
async def test_urls_go_through_the_ssrf_guard(harness: Harness, url: str) -> None:
    for tool, args in (
        ("http_check", {"url": url}),
        ("send_webhook", {"url": url, "payload": {"a": 1}}),
    ):
        out = await harness.call(tool, **args)
        assert out["ok"] is False and out["error"], (tool, url, out)
