"""harvis_common.manifest: parsing a service's manifest.toml and matching its routes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from harvis_common.manifest import ManifestError, load, parse
from harvis_testkit import manifest_problems

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


# ---------------------------------------------------------------- [sessions]

SESSIONS = """
service = "vibe-coding"
port = 8006
prefixes = ["/api/vibe", "/api/vibecoding"]
[sessions]
paths = ["/api/vibe/session/{session_id}", "/api/vibe/files/{session_id}/**", "/api/vibe/x/{user}/{session_id}/y"]
fields = ["session_id"]
"""


@pytest.mark.parametrize(
    ("path", "session"),
    [
        ("/api/vibe/session/abc", "abc"),
        ("/api/vibe/session/abc/more", None),
        ("/api/vibe/session", None),
        ("/api/vibe/session/", None),
        ("/api/vibe/files/abc", "abc"),
        ("/api/vibe/files/abc/tree", "abc"),
        ("/api/vibe/files/abc/a/b/c", "abc"),
        ("/api/vibe/filesx/abc", None),
        ("/api/vibe/x/u1/s1/y", "s1"),
        ("/api/vibe/x/u1/s1/z", None),
        ("/api/vibe/execute", None),
    ],
)
def test_a_sessions_path_names_the_session(path: str, session: str | None) -> None:
    sessions = parse(SESSIONS).sessions
    assert sessions is not None and sessions.fields == ("session_id",)
    assert sessions.in_path(path) == session


def test_sessions_are_optional() -> None:
    assert parse(GOOD).sessions is None


def test_the_stateful_services_pin_their_sessions() -> None:
    """browser-service and vibe-coding keep sessions in one replica; their manifests say where
    a request names one (the contract tests check it against their routes)."""
    root = Path(__file__).resolve().parents[2]
    browser = load(root / "browser-service" / "manifest.toml").sessions
    vibe = load(root / "vibe-coding" / "manifest.toml").sessions
    assert browser is not None and vibe is not None
    assert browser.in_path("/api/browser/session/s-1") == "s-1"
    assert browser.in_path("/api/browser/sessions") is None
    assert vibe.in_path("/api/vibe/files/s-1/read") == "s-1"
    assert vibe.in_path("/api/vibecoding/container/s-1/terminal") == "s-1"
    assert browser.fields == vibe.fields == ("session_id",)
    for stateless in ("research-service", "voice-service", "mcp-service", "n8n-integration"):
        assert load(root / stateless / "manifest.toml").sessions is None, stateless


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[sessions]\npaths = ["/a/{id}"]\n', "exactly one"),
        ('[sessions]\npaths = ["/a/{session_id}/{session_id}"]\n', "exactly one"),
        ('[sessions]\npaths = ["/a/s{session_id}"]\n', "exactly one"),
        ('[sessions]\npaths = ["a/{session_id}"]\n', "must start with /"),
        ('[sessions]\npaths = "/a/{session_id}"\n', "lists of strings"),
        ('[sessions]\nfields = ["session-id"]\n', "not a plain name"),
        ("[sessions]\nfields = []\n", "no paths and no fields"),
        ('[sessions]\nheaders = ["x"]\n', "unknown keys"),
        ('sessions = ["x"]\n', "is a table"),
    ],
)
def test_bad_sessions_are_refused_with_a_reason(section: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse('service = "x"\nport = 1\nprefixes = ["/a"]\n' + section)


class Run(BaseModel):
    session_id: str
    code: str


def test_manifest_problems_checks_sessions_against_the_routes() -> None:
    """What the contract tests check for [sessions]: every template matches a route, every route
    naming a session is covered, and the fields are what some route takes."""
    app = FastAPI()

    @app.get("/a/session/{session_id}")
    async def get(session_id: str) -> None: ...

    @app.get("/a/files/{session_id}/tree")
    async def tree(session_id: str) -> None: ...

    @app.get("/a/shot")
    async def shot(session_id: str) -> None: ...

    @app.post("/a/run")
    async def run(body: Run) -> None: ...

    head = 'service = "x"\nport = 1\nprefixes = ["/a"]\n[sessions]\n'
    good = parse(head + 'paths = ["/a/session/{session_id}", "/a/files/{session_id}/**"]\nfields = ["session_id"]\n')
    assert manifest_problems(app, good) == []
    bad = parse(head + 'paths = ["/a/session/{session_id}", "/a/gone/{session_id}"]\nfields = ["sid"]\n')
    assert sorted(manifest_problems(app, bad)) == [
        "a route takes session_id in its query or JSON body, but [sessions] fields doesn't list it",
        "http /a/files/{session_id}/tree names a session but is under none of the [sessions] paths",
        "sessions field sid is no route's query parameter or JSON body field",
        "sessions path /a/gone/{session_id} matches nothing the service serves",
    ]
