"""AI assist: ask the LLM for edits, show them as a unified diff, apply on confirmation.

The model is asked for the complete new content of each file it changes (small
models write whole files far more reliably than valid diffs); the service
computes the diff itself. Applying takes a unified diff (the proposed one, or
one the user edited), checks every hunk against the workspace's current
content (context and removed lines must match exactly, so a file that changed
in between is a 409, never a silent mis-apply), and only then writes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harvis_common.config import LLMSettings

from .workspace import Workspace, WorkspaceError, clean_path

MAX_DIFF_BYTES = 2 * 1024 * 1024
MAX_CONTEXT_BYTES = 200_000  # file contents sent to the model

SYSTEM_PROMPT = """You are a careful programming assistant editing files in a user's workspace.
Follow the user's instruction. Reply with the complete new content of every file you change
or create, each in exactly this form and nothing else around it:

<<<FILE relative/path/of/file
the complete new file content
>>>END

To delete a file, write <<<DELETE relative/path/of/file>>>. Keep unchanged files out of the reply.
Paths are relative to the workspace root. Do not use markdown code fences inside the blocks."""

_FILE_RE = re.compile(r"^<<<FILE[ \t]+(?P<path>[^\n]+?)[ \t]*\n(?P<body>.*?)^>>>END[ \t]*$", re.S | re.M)
_DELETE_RE = re.compile(r"^<<<DELETE[ \t]+(?P<path>[^\n>]+?)[ \t]*>>>[ \t]*$", re.M)


class AssistError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class EditModel(Protocol):
    """The LLM behind AI assist: a system prompt plus a user message in, text out."""

    async def complete(self, system: str, user: str) -> tuple[str, str]:
        """(reply text, model name)."""
        ...


class SharedLLMModel:
    """EditModel on harvis_common.llm (Ollama or any OpenAI-compatible server)."""

    def __init__(self, settings: LLMSettings) -> None:
        from harvis_common.llm import client_from_settings

        self.client = client_from_settings(settings)
        self.model = settings.default_model

    async def _model(self) -> str:
        if self.model:
            return self.model
        models = await self.client.list_models()
        if not models:
            raise AssistError(503, "The language model backend has no models")
        return models[0].name

    async def complete(self, system: str, user: str) -> tuple[str, str]:
        from harvis_common.llm import LLMError

        try:
            model = await self._model()
            result = await self.client.chat(
                [{"role": "system", "content": system}, {"role": "user", "content": user}], model, temperature=0.2
            )
        except LLMError as exc:
            raise AssistError(exc.status, exc.message) from exc
        return result.content, result.model

    async def close(self) -> None:
        await self.client.close()


# ---------------------------------------------------------------- proposing


def build_prompt(instruction: str, files: dict[str, str]) -> str:
    parts = [f"Instruction: {instruction.strip()}", "", "Files in scope:"]
    if not files:
        parts.append("(none: create what the instruction needs)")
    for path, content in files.items():
        parts += [f"<<<FILE {path}", content.removesuffix("\n"), ">>>END"]
    return "\n".join(parts)


@dataclass
class Edit:
    path: str
    content: str | None  # None: delete


def parse_reply(reply: str) -> list[Edit]:
    """The model's file blocks; stray text around them is ignored."""
    edits: dict[str, Edit] = {}
    for m in _FILE_RE.finditer(reply):
        path = "/".join(clean_path(m.group("path").strip().strip("`'\"")))
        edits[path] = Edit(path, _strip_fence(m.group("body")))
    for m in _DELETE_RE.finditer(reply):
        path = "/".join(clean_path(m.group("path").strip()))
        edits[path] = Edit(path, None)
    return list(edits.values())


def explanation(reply: str, limit: int = 2000) -> str:
    """What the model said besides its file blocks."""
    return _DELETE_RE.sub("", _FILE_RE.sub("", reply)).strip()[:limit]


def _strip_fence(body: str) -> str:
    lines = body.splitlines(keepends=True)
    if len(lines) >= 2 and lines[0].lstrip().startswith("```") and lines[-1].strip() == "```":
        lines = lines[1:-1]
    return "".join(lines)


def unified_diff(path: str, old: str | None, new: str | None) -> str:
    """A git-style unified diff of one file (old None: created; new None: deleted)."""
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    out: list[str] = []
    for line in difflib.unified_diff(
        a,
        b,
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile="/dev/null" if new is None else f"b/{path}",
        n=3,
    ):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def read_text(ws: Workspace, path: str) -> str | None:
    try:
        return ws.read(path).decode("utf-8")
    except WorkspaceError as exc:
        if exc.status == 404:
            return None
        raise
    except UnicodeDecodeError as exc:
        raise AssistError(400, f"{path} is not a UTF-8 text file") from exc


def gather_files(ws: Workspace, paths: Sequence[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    total = 0
    for raw in paths:
        path = "/".join(clean_path(raw))
        content = read_text(ws, path)
        if content is None:
            raise AssistError(404, f"Not found: {path}")
        total += len(content)
        if total > MAX_CONTEXT_BYTES:
            raise AssistError(413, f"The files in scope are too large for the model (limit {MAX_CONTEXT_BYTES} bytes)")
        files[path] = content
    return files


def diff_for_edits(ws: Workspace, edits: Sequence[Edit]) -> tuple[str, list[dict[str, Any]]]:
    chunks, changed = [], []
    for edit in edits:
        old = read_text(ws, edit.path)
        if old is None and edit.content is None:
            continue
        if old == edit.content:
            continue
        chunks.append(unified_diff(edit.path, old, edit.content))
        action = "create" if old is None else "delete" if edit.content is None else "modify"
        changed.append({"path": edit.path, "action": action})
    return "".join(chunks), changed


# ---------------------------------------------------------------- applying


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[tuple[str, str]] = field(default_factory=list)  # (' '|'-'|'+', text with its newline)


@dataclass
class FilePatch:
    old_path: str | None  # None: /dev/null (a new file)
    new_path: str | None  # None: /dev/null (a deletion)
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _diff_path(raw: str) -> str | None:
    name = raw.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith(("a/", "b/")):
        name = name[2:]
    if not name:
        raise AssistError(400, "A file header in the diff has no path")
    try:
        return "/".join(clean_path(name))
    except WorkspaceError as exc:
        raise AssistError(400, f"The diff names a path outside the workspace: {name}") from exc


def parse_diff(text: str) -> list[FilePatch]:
    if len(text.encode()) > MAX_DIFF_BYTES:
        raise AssistError(413, "The diff is too large")
    lines = text.splitlines(keepends=True)
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            patch = FilePatch(_diff_path(line[4:]), _diff_path(lines[i + 1][4:]))
            if patch.old_path is None and patch.new_path is None:
                raise AssistError(400, "A file in the diff goes from /dev/null to /dev/null")
            if patch.old_path and patch.new_path and patch.old_path != patch.new_path:
                raise AssistError(400, "Renames are not supported in diffs; move the file instead")
            patches.append(patch)
            i += 2
            continue
        m = _HUNK_RE.match(line)
        if m:
            if not patches:
                raise AssistError(400, "A hunk comes before any file header")
            hunk = Hunk(int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1))
            i += 1
            old_seen = new_seen = 0
            while i < len(lines) and (old_seen < hunk.old_len or new_seen < hunk.new_len):
                body = lines[i]
                tag, rest = body[:1], body[1:]
                if body.startswith("\\"):
                    _drop_newline(hunk)
                    i += 1
                    continue
                if tag == "\n" or body == "\n":  # an empty context line whose space was stripped
                    tag, rest = " ", "\n"
                if tag not in (" ", "-", "+"):
                    raise AssistError(400, f"Malformed hunk line in the diff for {patches[-1].path}")
                hunk.lines.append((tag, rest))
                old_seen += tag in (" ", "-")
                new_seen += tag in (" ", "+")
                i += 1
            if old_seen != hunk.old_len or new_seen != hunk.new_len:
                raise AssistError(400, f"A hunk in the diff for {patches[-1].path} is truncated")
            if i < len(lines) and lines[i].startswith("\\"):
                _drop_newline(hunk)
                i += 1
            patches[-1].hunks.append(hunk)
            continue
        i += 1  # "diff --git", "index", commentary
    if not patches:
        raise AssistError(400, "No file changes found in the diff")
    return patches


def _drop_newline(hunk: Hunk) -> None:
    if hunk.lines:
        tag, text = hunk.lines[-1]
        hunk.lines[-1] = (tag, text[:-1] if text.endswith("\n") else text)


def apply_patch(old: str | None, patch: FilePatch) -> str | None:
    """The new content, or None for a deletion; AssistError 409 when it does not apply."""
    if patch.old_path is None and old is not None:
        raise AssistError(409, f"{patch.path} already exists")
    if patch.old_path is not None and old is None:
        raise AssistError(409, f"{patch.path} does not exist")
    src = (old or "").splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    for hunk in patch.hunks:
        start = hunk.old_start - 1 if hunk.old_len else hunk.old_start
        if start < pos or start > len(src):
            raise AssistError(409, f"The diff does not apply to {patch.path}: the file has changed")
        out += src[pos:start]
        pos = start
        for tag, text in hunk.lines:
            if tag in (" ", "-"):
                if pos >= len(src) or src[pos] != text:
                    raise AssistError(409, f"The diff does not apply to {patch.path}: the file has changed")
                pos += 1
            if tag in (" ", "+"):
                out.append(text)
    out += src[pos:]
    if patch.new_path is None:
        if out:
            raise AssistError(409, f"The deletion of {patch.path} does not match its content")
        return None
    return "".join(out)


def apply_diff(ws: Workspace, text: str) -> list[dict[str, Any]]:
    """Check every file first, then write: all or nothing (as far as the checks go)."""
    patches = parse_diff(text)
    results: list[tuple[FilePatch, str | None]] = []
    seen: set[str] = set()
    for patch in patches:
        if patch.path in seen:
            raise AssistError(400, f"{patch.path} appears twice in the diff")
        seen.add(patch.path)
        results.append((patch, apply_patch(read_text(ws, patch.path), patch)))
    applied = []
    for patch, content in results:
        if content is None:
            ws.delete(patch.path)
            applied.append({"path": patch.path, "action": "delete"})
        else:
            ws.write(patch.path, content.encode())
            applied.append({"path": patch.path, "action": "create" if patch.old_path is None else "modify"})
    return applied
