"""harvis_common.manifest: parsing a service's manifest.toml and matching its routes."""

from __future__ import annotations

import pytest

from harvis_common.manifest import ManifestError, parse

GOOD = """
service = "vibe-coding"
port = 8006
prefixes = ["/api/vibe", "/api/vibecoding"]
[long]
"/api/vibe/execute" = "job"
"/api/vibecoding/container/{session_id}/terminal" = "websocket"
"/api/vibe/files/**" = "job"
"/api/vibe/raw/{rest:path}" = "model"
"""


def test_prefixes_match_whole_segments() -> None:
    m = parse(GOOD)
    assert m.url_setting == "vibe_coding_url"
    assert m.owns("/api/vibe") and m.owns("/api/vibe/sessions") and m.owns("/api/vibecoding/x")
    assert not m.owns("/api/vibes") and not m.owns("/api") and not m.owns("/api/vib")


@pytest.mark.parametrize(
    ("path", "long"),
    [
        ("/api/vibe/execute", True),
        ("/api/vibe/execute/x", False),
        ("/api/vibecoding/container/s-1/terminal", True),
        ("/api/vibecoding/container//terminal", False),
        ("/api/vibecoding/container/a/b/terminal", False),
        ("/api/vibe/files", True),
        ("/api/vibe/files/s/read", True),
        ("/api/vibe/filesx", False),
        ("/api/vibe/raw/a/b/c", True),
        ("/api/vibe/session/create", False),
    ],
)
def test_long_routes(path: str, long: bool) -> None:
    assert parse(GOOD).is_long(path) is long


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('service = "x"\nport = 1\n', "'prefixes' is required"),
        ('service = "x"\nport = "1"\nprefixes = []\n', "port an integer"),
        ('service = "x"\nport = 1\nprefixes = ["api/x"]\n', "must start with /"),
        ('service = "x"\nport = 1\nprefixes = ["/api//x"]\n', "empty segment"),
        ('service = "x"\nport = 1\nprefixes = ["/a"]\n[long]\n"/a/b" = "slow"\n', "kind must be one of"),
        ('service = "x"\nport = 1\nprefixes = ["/a"]\nstreaming = []\n', "unknown keys"),
        ("service = ", "manifest.toml"),
    ],
)
def test_bad_manifests_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse(text)
