"""A service's route manifest (`microservices/<service>/manifest.toml`): the path prefixes
the gateway sends to it and which of its routes are long (they stream, or wait on a model
or a sandbox), so they get the gateway's long read timeout instead of 60 s.

One file per service, read by core-api's gateway at start, by the README tables
(`scripts/route_table.py`), by the contract tests (every route a service serves falls
under its prefixes; every long route exists) and so by the merged OpenAPI.

    service = "research-service"
    port = 8001
    prefixes = ["/api/web-search", "/api/research"]
    [long]
    "/api/research-chat" = "sse"
    "/api/browser/session/{session_id}" = "model"    # {name}: exactly one path segment
    "/api/vibe/files/**" = "job"                     # /**: the path and everything under it
    [sessions]    # optional: requests naming a session go to the replica that owns it
    paths = ["/api/vibe/files/{session_id}/**"]      # the segment named {session_id} is the id
    fields = ["session_id"]                          # a query parameter, or a JSON body's top-level field

A service with [sessions] keeps per-session state (a browser, a sandbox) in one replica;
core-api's gateway reads the session's owner from its id (harvis_common.replicas) and sends
the request there (core_api/gateway/replicas.py).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_FILE = "manifest.toml"
# Why a route is long: it streams Server-Sent Events, it is a WebSocket, it waits on a model
# (an LLM on a CPU, Whisper, Piper, OCR), or on a job (a sandboxed run, a workflow execution).
LONG_KINDS = frozenset({"sse", "websocket", "model", "job"})
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::path)?\}")
SESSION_PARAM = "{session_id}"


class ManifestError(ValueError):
    pass


def _check_path(path: str, where: str) -> str:
    if not path.startswith("/") or "//" in path or (path != "/" and path.endswith("/")):
        raise ManifestError(f"{where}: {path!r} must start with / and have no empty segment")
    return path


def template_regex(template: str, capture: str | None = None) -> re.Pattern[str]:
    """`/a/{x}/b` matches one segment for `{x}`; a trailing `/**` matches the path and below.
    `capture`: a parameter's name (`session_id`) whose segment becomes the group of that name."""
    under = template.endswith("/**")
    base = template.removesuffix("/**")
    out, pos = [], 0
    for m in _PARAM.finditer(base):
        out.append(re.escape(base[pos : m.start()]))
        segment = ".+" if m.group().endswith(":path}") else "[^/]+"
        out.append(f"(?P<{capture}>{segment})" if m.group()[1:-1] == capture else segment)
        pos = m.end()
    out.append(re.escape(base[pos:]))
    return re.compile("".join(out) + ("(?:/.*)?" if under else "") + r"\Z")


@dataclass(frozen=True)
class Sessions:
    """Where a request names a session: path templates with a `{session_id}` segment, and
    the names of query parameters or top-level JSON body fields that carry one."""

    paths: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        capture = SESSION_PARAM[1:-1]
        object.__setattr__(self, "_patterns", tuple(template_regex(t, capture) for t in self.paths))

    def in_path(self, path: str) -> str | None:
        """The session id a path names (the `{session_id}` segment of the first template it matches)."""
        for pattern in self._patterns:  # type: ignore[attr-defined]
            m = pattern.match(path)
            if m is not None:
                return m.group("session_id")
        return None


@dataclass(frozen=True)
class Manifest:
    service: str
    port: int
    prefixes: tuple[str, ...]
    long: dict[str, str] = field(default_factory=dict)  # route template -> kind
    sessions: Sessions | None = None  # None: the service keeps no per-replica sessions

    def __post_init__(self) -> None:
        literal = {t for t in self.long if "{" not in t and not t.endswith("/**")}
        patterns = tuple(template_regex(t) for t in self.long if t not in literal)
        object.__setattr__(self, "_literal", frozenset(literal))
        object.__setattr__(self, "_patterns", patterns)

    @property
    def url_setting(self) -> str:
        """core-api's setting that holds this service's URL (`research_service_url`)."""
        return self.service.replace("-", "_") + "_url"

    def owns(self, path: str) -> bool:
        """True when `path` falls under one of the prefixes, on segment boundaries."""
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)

    def is_long(self, path: str) -> bool:
        # One set lookup for the common literal routes; templates only when that misses.
        return path in self._literal or any(p.match(path) for p in self._patterns)  # type: ignore[attr-defined]


def parse(text: str, where: str = MANIFEST_FILE) -> Manifest:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    unknown = set(data) - {"service", "port", "prefixes", "long", "sessions"}
    if unknown:
        raise ManifestError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        service, port, prefixes = data["service"], data["port"], data["prefixes"]
    except KeyError as exc:
        raise ManifestError(f"{where}: {exc.args[0]!r} is required") from exc
    if not isinstance(service, str) or not isinstance(port, int) or not isinstance(prefixes, list):
        raise ManifestError(f"{where}: service is a string, port an integer, prefixes a list")
    long = data.get("long", {})
    for template, kind in long.items():
        _check_path(template, where)
        if kind not in LONG_KINDS:
            raise ManifestError(f"{where}: {template!r} = {kind!r}: kind must be one of {sorted(LONG_KINDS)}")
    return Manifest(service, port, tuple(_check_path(p, where) for p in prefixes), dict(long), _sessions(data, where))


def _sessions(data: dict, where: str) -> Sessions | None:
    if "sessions" not in data:
        return None
    section = data["sessions"]
    if not isinstance(section, dict):
        raise ManifestError(f"{where}: [sessions] is a table")
    unknown = set(section) - {"paths", "fields"}
    if unknown:
        raise ManifestError(f"{where}: [sessions]: unknown keys {sorted(unknown)}")
    paths, fields = section.get("paths", []), section.get("fields", [])
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in (paths, fields)):
        raise ManifestError(f"{where}: [sessions] paths and fields are lists of strings")
    if not paths and not fields:
        raise ManifestError(f"{where}: [sessions] names no paths and no fields")
    for template in paths:
        _check_path(template, where)
        if template.split("/").count(SESSION_PARAM) != 1:
            raise ManifestError(f"{where}: [sessions] {template!r} needs exactly one {SESSION_PARAM} segment")
    for name in fields:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ManifestError(f"{where}: [sessions] field {name!r} is not a plain name")
    return Sessions(tuple(paths), tuple(fields))


def load(path: Path) -> Manifest:
    return parse(path.read_text(encoding="utf-8"), str(path))


def load_dir(root: Path, services: list[str] | tuple[str, ...]) -> dict[str, Manifest]:
    """`<root>/<service>/manifest.toml` for each service; a missing one is an error (a
    gateway that silently lost a service's routes would answer 404 for all of them)."""
    manifests = {}
    for service in services:
        path = root / service / MANIFEST_FILE
        if not path.is_file():
            raise ManifestError(f"{path} is missing: the gateway can't route {service}")
        manifest = load(path)
        if manifest.service != service:
            raise ManifestError(f"{root / service / MANIFEST_FILE}: says service = {manifest.service!r}")
        manifests[service] = manifest
    return manifests
