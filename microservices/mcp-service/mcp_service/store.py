"""The service's state: each user's workspace, `<MCP_WORKSPACE_DIR>/<user id>/`, and the
confinement every file and archive tool goes through to touch it.

Containment is decided on *resolved real paths* with `Path.is_relative_to`,
never on string prefixes: `/ws/1` does not contain `/ws/10` or `/ws/1_evil`,
and a symlink is judged by where it points (CVE-2025-53110 / CVE-2025-53109
in the reference MCP filesystem server were exactly these two mistakes).
Paths are relative to the workspace; absolute paths, `..` segments (also
percent-encoded), backslashes and control characters are refused outright.
Files are opened with O_NOFOLLOW.
"""

from __future__ import annotations

import asyncio
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from .registry import ToolContext, ToolError

CHUNK = 65536


def check_relative(raw: str, what: str = "path") -> str:
    """The grammar every user path must pass (before touching the filesystem)."""
    if not isinstance(raw, str):
        raise ToolError(f"{what} must be a string")
    if len(raw) > 4096:
        raise ToolError(f"{what} is too long")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ToolError(f"{what} must not contain control characters")
    if "\\" in raw:
        raise ToolError(f"{what} must use '/' separators (no backslashes)")
    forms = {raw}
    decoded = raw
    for _ in range(3):  # %2e%2e, %252e%252e, ...
        decoded = unquote(decoded)
        forms.add(decoded)
    for form in forms:
        if form.startswith(("/", "~")) or (len(form) > 1 and form[1] == ":" and form[0].isalpha()):
            raise ToolError(f"{what} must be relative to your workspace (no absolute paths)")
        if ".." in PurePosixPath(form).parts or "\\" in form or "\x00" in form:
            raise ToolError(f"{what} must not contain '..' segments")
    return raw


def contained(root: Path, candidate: Path) -> Path:
    """The real path of `candidate`; refused unless it lies within `root`."""
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(root):
        raise ToolError("path escapes your workspace")
    return real


def resolve(ctx: ToolContext, raw: str, *, what: str = "path", allow_root: bool = True) -> Path:
    root = ctx.workspace
    rel = check_relative(raw, what).strip("/") or "."
    real = contained(root, root / rel)
    if real == root and not allow_root:
        raise ToolError(f"{what} must not be the workspace itself")
    return real


def rel(ctx: ToolContext, path: Path) -> str:
    r = path.relative_to(ctx.workspace).as_posix()
    return r or "."


def open_write(path: Path, *, append: bool = False, exclusive: bool = False) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_APPEND if append else (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:
        raise ToolError(f"{path.name} already exists") from None
    except IsADirectoryError:
        raise ToolError(f"{path.name} is a directory") from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the final component is a symlink
            raise ToolError("refusing to write through a symbolic link") from None
        raise ToolError(f"cannot write {path.name}: {exc.strerror}") from None


def make_parents(ctx: ToolContext, path: Path) -> None:
    parent = contained(ctx.workspace, path.parent)
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    contained(ctx.workspace, path.parent)  # still inside after creation


def threaded(fn: Any) -> Any:
    """`fn(ctx, args)` as a tool handler: run in a worker thread, OS errors as ToolErrors."""

    async def run(args: Any, ctx: ToolContext) -> Any:
        try:
            return await asyncio.to_thread(fn, ctx, args)
        except (FileNotFoundError, NotADirectoryError):
            raise ToolError("no such file or directory") from None
        except PermissionError:
            raise ToolError("permission denied") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile):
            raise ToolError("the archive is corrupt or unsupported") from None
        except OSError as exc:
            raise ToolError(f"file operation failed: {exc.strerror or exc.__class__.__name__}") from None

    return run
