"""File tools on the caller's workspace: list, read, write, append, delete, move,
copy, search and inspect files (`store.py` confines every path to the workspace)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import mimetypes
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..registry import Args, Registry, Tool, ToolContext, ToolError
from ..store import CHUNK, contained, make_parents, open_write, rel, resolve, threaded


def _entry(ctx: ToolContext, path: Path, st: os.stat_result) -> dict[str, Any]:
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
    return {
        "path": rel(ctx, path),
        "name": path.name,
        "type": kind,
        "size": st.st_size if kind == "file" else None,
        "modified": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
    }


class ListArgs(Args):
    path: str = Field(default=".", description="Directory, relative to your workspace")
    recursive: bool = False
    max_entries: int = Field(default=500, ge=1, le=5000)


def _list(ctx: ToolContext, args: ListArgs) -> dict[str, Any]:
    base = resolve(ctx, args.path)
    if not base.is_dir():
        raise ToolError("not a directory")
    out: list[dict[str, Any]] = []
    truncated = False
    stack = [base]
    while stack:
        current = stack.pop()
        with os.scandir(current) as it:
            for de in sorted(it, key=lambda d: d.name):
                if len(out) >= args.max_entries:
                    truncated = True
                    break
                st = de.stat(follow_symlinks=False)
                out.append(_entry(ctx, Path(de.path), st))
                if args.recursive and stat.S_ISDIR(st.st_mode):
                    stack.append(Path(de.path))
        if truncated:
            break
    return {"path": rel(ctx, base), "entries": out, "truncated": truncated}


class ReadArgs(Args):
    path: str = Field(description="File, relative to your workspace")
    encoding: Literal["utf-8", "base64"] = Field(default="utf-8", description="utf-8 text, or base64 for binary")
    offset: int = Field(default=0, ge=0)
    max_bytes: int | None = Field(default=None, ge=1, description="Read at most this many bytes")


def _read(ctx: ToolContext, args: ReadArgs) -> dict[str, Any]:
    path = resolve(ctx, args.path, allow_root=False)
    if not path.is_file():
        raise ToolError("not a file" if path.exists() else "no such file")
    limit = min(args.max_bytes or ctx.settings.mcp_max_file_bytes, ctx.settings.mcp_max_file_bytes)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(args.offset)
        data = fh.read(limit)
    truncated = args.offset + len(data) < size
    if args.encoding == "base64":
        content = base64.b64encode(data).decode()
    else:
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError("file is not UTF-8 text: read it with encoding=base64") from None
    return {"path": rel(ctx, path), "size": size, "encoding": args.encoding, "content": content, "truncated": truncated}


class WriteArgs(Args):
    path: str = Field(description="File, relative to your workspace")
    content: str = Field(description="Text, or base64 when encoding=base64", max_length=14_000_000)
    encoding: Literal["utf-8", "base64"] = "utf-8"
    overwrite: bool = True


def _data(ctx: ToolContext, content: str, encoding: str) -> bytes:
    try:
        data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise ToolError("content is not valid " + encoding) from None
    if len(data) > ctx.settings.mcp_max_file_bytes:
        raise ToolError(f"content too large ({len(data)} bytes > {ctx.settings.mcp_max_file_bytes})")
    return data


def _write(ctx: ToolContext, args: WriteArgs, append: bool = False) -> dict[str, Any]:
    path = resolve(ctx, args.path, allow_root=False)
    data = _data(ctx, args.content, args.encoding)
    if path.is_dir():
        raise ToolError("path is a directory")
    if append and path.exists() and path.stat().st_size + len(data) > ctx.settings.mcp_max_file_bytes:
        raise ToolError("file would exceed the size limit")
    make_parents(ctx, path)
    fd = open_write(path, append=append, exclusive=not append and not args.overwrite)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return {"path": rel(ctx, path), "bytes_written": len(data), "size": path.stat().st_size}


class AppendArgs(Args):
    path: str = Field(description="File, relative to your workspace (created if missing)")
    content: str = Field(max_length=14_000_000)
    encoding: Literal["utf-8", "base64"] = "utf-8"


class DeleteArgs(Args):
    path: str = Field(description="File or directory, relative to your workspace")
    recursive: bool = Field(default=False, description="Delete a non-empty directory and its contents")


def _delete(ctx: ToolContext, args: DeleteArgs) -> dict[str, Any]:
    path = resolve(ctx, args.path, allow_root=False)
    if not path.exists():
        raise ToolError("no such file or directory")
    if path.is_dir():
        if args.recursive:
            shutil.rmtree(path)  # never follows symlinks
        else:
            try:
                path.rmdir()
            except OSError:
                raise ToolError("directory is not empty (pass recursive=true)") from None
    else:
        path.unlink()
    return {"deleted": rel(ctx, path)}


class MoveArgs(Args):
    source: str = Field(description="Relative to your workspace")
    destination: str = Field(description="Relative to your workspace")
    overwrite: bool = False


def _dest(ctx: ToolContext, source: Path, raw: str, overwrite: bool) -> Path:
    dest = resolve(ctx, raw, what="destination", allow_root=True)
    if dest.is_dir():
        dest = contained(ctx.workspace, dest / source.name)
    if dest == source or dest.is_relative_to(source):
        raise ToolError("destination is inside the source")
    if dest.exists() and not overwrite:
        raise ToolError("destination exists (pass overwrite=true)")
    make_parents(ctx, dest)
    return dest


def _move(ctx: ToolContext, args: MoveArgs) -> dict[str, Any]:
    src = resolve(ctx, args.source, what="source", allow_root=False)
    if not src.exists():
        raise ToolError("no such source")
    dest = _dest(ctx, src, args.destination, args.overwrite)
    if dest.is_dir():
        raise ToolError("destination is an existing directory")
    os.replace(src, dest)  # within one filesystem: a rename, links are moved as links
    return {"source": rel(ctx, src), "destination": rel(ctx, dest)}


def _copy(ctx: ToolContext, args: MoveArgs) -> dict[str, Any]:
    src = resolve(ctx, args.source, what="source", allow_root=False)
    if not src.exists():
        raise ToolError("no such source")
    dest = _dest(ctx, src, args.destination, args.overwrite)
    if src.is_dir():
        total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file() and not f.is_symlink())
        if total > ctx.settings.mcp_archive_max_bytes:
            raise ToolError("directory too large to copy")
        if dest.exists():
            raise ToolError("destination exists")
        shutil.copytree(src, dest, symlinks=True)  # links are copied as links, never followed
    else:
        if src.stat().st_size > ctx.settings.mcp_max_file_bytes:
            raise ToolError("file too large to copy")
        with open(src, "rb") as fin:
            fd = open_write(dest)
            with os.fdopen(fd, "wb") as fout:
                shutil.copyfileobj(fin, fout, CHUNK)
    return {"source": rel(ctx, src), "destination": rel(ctx, dest)}


class SearchArgs(Args):
    path: str = Field(default=".", description="Directory to search, relative to your workspace")
    name_pattern: str = Field(default="*", max_length=200, description="Glob on file names, e.g. *.txt")
    text: str | None = Field(default=None, max_length=1000, description="Find files containing this text")
    max_results: int = Field(default=200, ge=1, le=2000)


def _search(ctx: ToolContext, args: SearchArgs) -> dict[str, Any]:
    base = resolve(ctx, args.path)
    if not base.is_dir():
        raise ToolError("not a directory")
    needle = args.text.encode() if args.text else None
    matches: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if not fnmatch.fnmatch(name, args.name_pattern):
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            hit: dict[str, Any] = {"path": rel(ctx, path)}
            if needle is not None:
                if path.stat().st_size > ctx.settings.mcp_max_file_bytes:
                    continue
                lines = []
                with open(path, "rb") as fh:
                    for number, line in enumerate(fh, 1):
                        if needle in line:
                            lines.append({"line": number, "text": line.decode(errors="replace").rstrip()[:300]})
                            if len(lines) >= 5:
                                break
                if not lines:
                    continue
                hit["matches"] = lines
            matches.append(hit)
            if len(matches) >= args.max_results:
                return {"results": matches, "truncated": True}
    return {"results": matches, "truncated": False}


class InfoArgs(Args):
    path: str = Field(description="Relative to your workspace")


def _info(ctx: ToolContext, args: InfoArgs) -> dict[str, Any]:
    path = resolve(ctx, args.path)
    if not path.exists():
        raise ToolError("no such file or directory")
    st = path.stat()
    info = _entry(ctx, path, st)
    info.update(
        created=datetime.fromtimestamp(st.st_ctime, UTC).isoformat(),
        mode=oct(stat.S_IMODE(st.st_mode)),
        mime_type=mimetypes.guess_type(path.name)[0] if path.is_file() else None,
    )
    if path.is_file() and st.st_size <= ctx.settings.mcp_max_file_bytes:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
        info["sha256"] = digest.hexdigest()
    return info


def register(registry: Registry) -> None:
    def add(name: str, description: str, args: type[Args], fn: Any) -> None:
        registry.add(Tool(name, description, "files", args, threaded(fn)))

    add("list_files", "List a directory of your workspace.", ListArgs, _list)
    add("read_file", "Read a file of your workspace (UTF-8 text or base64).", ReadArgs, _read)
    add("write_file", "Create or replace a file in your workspace.", WriteArgs, _write)
    add(
        "append_file",
        "Append to a file in your workspace (created if missing).",
        AppendArgs,
        lambda ctx, a: _write(ctx, WriteArgs(path=a.path, content=a.content, encoding=a.encoding), append=True),
    )
    add("delete_file", "Delete a file or directory of your workspace.", DeleteArgs, _delete)
    add("move_file", "Move or rename a file or directory within your workspace.", MoveArgs, _move)
    add("copy_file", "Copy a file or directory within your workspace.", MoveArgs, _copy)
    add("search_files", "Find files by name pattern and/or contained text.", SearchArgs, _search)
    add("file_info", "Size, times, type and SHA-256 of a file.", InfoArgs, _info)
