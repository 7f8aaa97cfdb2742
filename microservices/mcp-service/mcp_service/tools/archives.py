"""Archive tools on the caller's workspace: `archive_create` and `archive_extract`.

Archives are checked member by member before anything is written: no absolute
or `..` names, no links, no devices, and caps on member count and total
(actually written) size. Paths are confined to the workspace by `store.py`.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field

from ..registry import Args, Registry, Tool, ToolContext, ToolError
from ..store import CHUNK, contained, make_parents, open_write, rel, resolve, threaded


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
    make_parents(ctx, dest)
    fd = open_write(dest, exclusive=True)
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
        fd = open_write(target)
        with os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(CHUNK):
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


def register(registry: Registry) -> None:
    def add(name: str, description: str, args: type[Args], fn: Any) -> None:
        registry.add(Tool(name, description, "files", args, threaded(fn)))

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
