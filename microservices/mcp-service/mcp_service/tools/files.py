"""File and archive tools, confined to the caller's workspace
(`<MCP_WORKSPACE_DIR>/<user id>/`).

Containment is decided on *resolved real paths* with `Path.is_relative_to`,
never on string prefixes: `/ws/1` does not contain `/ws/10` or `/ws/1_evil`,
and a symlink is judged by where it points (CVE-2025-53110 / CVE-2025-53109
in the reference MCP filesystem server were exactly these two mistakes).
Paths are relative to the workspace; absolute paths, `..` segments (also
percent-encoded), backslashes and control characters are refused outright.
Files are opened with O_NOFOLLOW. Archives are checked member by member
before anything is written: no absolute or `..` names, no links, no devices,
and caps on member count and total (actually written) size.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import mimetypes
import os
import shutil
import stat
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field

from ..registry import Args, Registry, Tool, ToolContext, ToolError

_CHUNK = 65536


# ---------------------------------------------------------------- containment


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


def _open_write(path: Path, *, append: bool = False, exclusive: bool = False) -> int:
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


def _make_parents(ctx: ToolContext, path: Path) -> None:
    parent = contained(ctx.workspace, path.parent)
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    contained(ctx.workspace, path.parent)  # still inside after creation


def _entry(ctx: ToolContext, path: Path, st: os.stat_result) -> dict[str, Any]:
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
    return {
        "path": rel(ctx, path),
        "name": path.name,
        "type": kind,
        "size": st.st_size if kind == "file" else None,
        "modified": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
    }


# ---------------------------------------------------------------- basic file tools


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
    _make_parents(ctx, path)
    fd = _open_write(path, append=append, exclusive=not append and not args.overwrite)
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
    _make_parents(ctx, dest)
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
            fd = _open_write(dest)
            with os.fdopen(fd, "wb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
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
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
        info["sha256"] = digest.hexdigest()
    return info


# ---------------------------------------------------------------- archives


class ArchiveCreateArgs(Args):
    paths: list[str] = Field(description="Files or directories to include", min_length=1, max_length=100)
    destination: str = Field(description="Archive file to create, relative to your workspace")
    format: Literal["zip", "tar.gz"] = "zip"


def _archive_create(ctx: ToolContext, args: ArchiveCreateArgs) -> dict[str, Any]:
    dest = resolve(ctx, args.destination, what="destination", allow_root=False)
    if dest.exists():
        raise ToolError("destination exists")
    files: list[tuple[Path, str]] = []
    total = 0
    for raw in args.paths:
        src = resolve(ctx, raw, what="paths", allow_root=True)
        if not src.exists():
            raise ToolError(f"no such file: {raw[:100]}")
        candidates = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for f in candidates:
            if f.is_symlink() or f == dest:
                continue  # links are never archived (nor followed)
            real = contained(ctx.workspace, f)
            total += real.stat().st_size
            if total > ctx.settings.mcp_archive_max_bytes or len(files) >= ctx.settings.mcp_archive_max_members:
                raise ToolError("too much to archive (size or file count limit)")
            files.append((real, rel(ctx, real)))
    _make_parents(ctx, dest)
    fd = _open_write(dest, exclusive=True)
    try:
        with os.fdopen(fd, "wb") as raw_out:
            if args.format == "zip":
                with zipfile.ZipFile(raw_out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    for real, name in files:
                        zf.write(real, name)
            else:
                with tarfile.open(fileobj=raw_out, mode="w:gz") as tf:
                    for real, name in files:
                        tf.add(real, arcname=name, recursive=False)
    except Exception:
        dest.unlink(missing_ok=True)
        raise
    return {"archive": rel(ctx, dest), "format": args.format, "files": len(files), "bytes": dest.stat().st_size}


class ArchiveExtractArgs(Args):
    archive: str = Field(description="zip or tar.gz file, relative to your workspace")
    destination: str = Field(default=".", description="Directory to extract into, relative to your workspace")
    overwrite: bool = False


def member_name(name: str) -> str:
    """An archive member name, refused unless it is a plain relative path."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ToolError(f"archive member {name[:100]!r} has an absolute or unsafe name")
    if ".." in PurePosixPath(name).parts:
        raise ToolError(f"archive member {name[:100]!r} contains '..'")
    if any(ord(c) < 32 for c in name):
        raise ToolError("archive member name contains control characters")
    return name


def _extract(ctx: ToolContext, args: ArchiveExtractArgs) -> dict[str, Any]:
    src = resolve(ctx, args.archive, what="archive", allow_root=False)
    if not src.is_file():
        raise ToolError("no such archive")
    dest_dir = resolve(ctx, args.destination, what="destination")
    max_bytes, max_members = ctx.settings.mcp_archive_max_bytes, ctx.settings.mcp_archive_max_members
    plan: list[tuple[str, bool, int]] = []  # (name, is_dir, declared size)

    def admit(name: str, is_dir: bool, size: int) -> None:
        member_name(name)
        if len(plan) >= max_members:
            raise ToolError(f"archive has too many members (more than {max_members})")
        total = sum(p[2] for p in plan) + size
        if total > max_bytes:
            raise ToolError(f"archive expands beyond the size limit ({max_bytes} bytes): refused")
        plan.append((name, is_dir, size))

    written = 0

    def target_for(name: str, is_dir: bool) -> Path:
        candidate = dest_dir / name.rstrip("/")
        # Parent must resolve inside the destination; the member itself must not exist as a link.
        parent = Path(os.path.realpath(candidate.parent))
        if not parent.is_relative_to(dest_dir) or not parent.is_relative_to(ctx.workspace):
            raise ToolError(f"archive member {name[:100]!r} would land outside the destination")
        target = parent / candidate.name
        if target.is_symlink():
            raise ToolError(f"archive member {name[:100]!r} would write through a symbolic link")
        if target.exists() and not is_dir and not args.overwrite:
            raise ToolError(f"{rel(ctx, target)} exists (pass overwrite=true)")
        return target

    def copy_stream(fin: Any, name: str) -> None:
        nonlocal written
        target = target_for(name, False)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        contained(dest_dir, target.parent)
        fd = _open_write(target)
        with os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                written += len(chunk)
                if written > max_bytes:  # headers can lie: count what really comes out
                    raise ToolError("archive expands beyond the size limit: extraction stopped")
                fout.write(chunk)

    if zipfile.is_zipfile(src):
        kind = "zip"
        with zipfile.ZipFile(src) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise ToolError(f"archive has too many members (more than {max_members})")
            for info in infos:
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ToolError(f"archive member {info.filename[:100]!r} is a symbolic link: refused")
                if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise ToolError(f"archive member {info.filename[:100]!r} is a special file: refused")
                if info.flag_bits & 0x1:
                    raise ToolError("encrypted archives are not supported")
                admit(info.filename, info.is_dir(), info.file_size)
            for info in infos:
                if info.is_dir():
                    d = target_for(info.filename, True)
                    d.mkdir(parents=True, exist_ok=True, mode=0o700)
                    contained(dest_dir, d)
                else:
                    with zf.open(info) as fin:
                        copy_stream(fin, info.filename)
    else:
        try:
            tf = tarfile.open(src, "r:*")  # noqa: SIM115 - closed by the `with tf` below
        except (tarfile.TarError, OSError):
            raise ToolError("not a zip or tar archive") from None
        kind = "tar"
        with tf:
            members = []
            try:
                for m in tf:  # headers are checked as they come: a bomb stops at the cap
                    if m.issym() or m.islnk():
                        raise ToolError(f"archive member {m.name[:100]!r} is a link: refused")
                    if not (m.isfile() or m.isdir()):
                        raise ToolError(f"archive member {m.name[:100]!r} is a special file: refused")
                    admit(m.name, m.isdir(), m.size if m.isfile() else 0)
                    try:
                        tarfile.data_filter(m, str(dest_dir))  # the stdlib's own check as well
                    except tarfile.FilterError as exc:
                        raise ToolError(f"archive member refused: {exc}") from None
                    members.append(m)
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise ToolError(f"archive is corrupt: {exc.__class__.__name__}") from None
            for m in members:
                if m.isdir():
                    d = target_for(m.name, True)
                    d.mkdir(parents=True, exist_ok=True, mode=0o700)
                    contained(dest_dir, d)
                else:
                    fin = tf.extractfile(m)
                    if fin is None:
                        raise ToolError(f"cannot read member {m.name[:100]!r}")
                    with fin:
                        copy_stream(fin, m.name)
    return {
        "archive": rel(ctx, src),
        "format": kind,
        "destination": rel(ctx, dest_dir),
        "members": len(plan),
        "bytes": written,
    }


# ---------------------------------------------------------------- registration


def _threaded(fn: Any) -> Any:
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


def register(registry: Registry) -> None:
    def add(name: str, description: str, args: type[Args], fn: Any) -> None:
        registry.add(Tool(name, description, "files", args, _threaded(fn)))

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
    add(
        "archive_create",
        "Pack files of your workspace into a zip or tar.gz archive.",
        ArchiveCreateArgs,
        _archive_create,
    )
    add(
        "archive_extract",
        "Unpack a zip or tar(.gz) archive into your workspace"
        " (links, absolute and '..' members refused; size and count caps).",
        ArchiveExtractArgs,
        _extract,
    )
