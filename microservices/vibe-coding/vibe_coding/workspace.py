"""A session's workspace on disk, reachable only through paths that stay inside it.

Sandboxed code writes to the workspace too, so it may plant symlinks, FIFOs or
swap a directory for a link between two requests. Every operation therefore
walks the path one component at a time from a descriptor of the workspace
root with O_NOFOLLOW (a symlink anywhere fails with ELOOP instead of being
followed), acts relative to the parent's descriptor (`dir_fd`), and checks the
opened file's real path is still inside the root (`Path.is_relative_to`).
The service may run as root natively: it must never touch a file outside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_PATH = 1024
MAX_TREE_ENTRIES = 5000


def prepare_root(root: Path) -> Path:
    """The root of all workspaces (VIBE_WORKSPACE_DIR), made if missing, mode 0711 (others
    may pass through it, not list it); resolved."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    return root.resolve()


def disk_usage(root: Path) -> int:
    """What a workspace counts against its limit: each entry's disk blocks (sparse files
    count what they really take), at least 512 bytes per entry (so a flood of empty
    files counts too). Never follows links."""
    total = 0
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError:
        return 0
    try:
        for _, dirs, files, dfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            for name in (*dirs, *files):
                with contextlib.suppress(OSError):  # gone meanwhile
                    total += max(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_blocks * 512, 512)
    finally:
        os.close(fd)
    return total


class WorkspaceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def clean_path(raw: str, *, allow_root: bool = False) -> tuple[str, ...]:
    """A workspace-relative path as its components. A leading '/' means the workspace
    root; '..', NUL bytes and over-long names are refused."""
    if "\x00" in raw or len(raw) > MAX_PATH:
        raise WorkspaceError(400, "Invalid path")
    parts = tuple(p for p in PurePosixPath("/" + raw.replace("\\", "/")).parts[1:] if p not in ("", "."))
    if any(p == ".." for p in parts) or any(len(p.encode()) > 255 for p in parts):
        raise WorkspaceError(400, "Invalid path: it must stay inside the workspace")
    if not parts and not allow_root:
        raise WorkspaceError(400, "A path inside the workspace is required")
    return parts


def _os_error(exc: OSError, path: str) -> WorkspaceError:
    if exc.errno in (errno.ENOENT,):
        return WorkspaceError(404, f"Not found: {path}")
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO):
        return WorkspaceError(400, f"Not a regular file or directory inside the workspace: {path}")
    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
        return WorkspaceError(409, f"Already exists: {path}")
    if exc.errno in (errno.EINVAL, errno.EXDEV, errno.ENAMETOOLONG):
        return WorkspaceError(400, f"Invalid operation on {path}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return WorkspaceError(413, "The workspace is full")
    return WorkspaceError(403, f"Access denied: {path}")


@dataclass
class Workspace:
    root: Path
    owner: tuple[int, int] | None = None  # chown new files and directories to (uid, gid)
    max_file_bytes: int = 1_048_576
    max_total_bytes: int = 209_715_200

    # ------------------------------------------------------------ lifecycle

    def create(self) -> None:
        """Make the root (and its parents, traversable but not listable by others)."""
        top, user = self.root.parents[1], self.root.parents[0]
        top.mkdir(mode=0o711, parents=True, exist_ok=True)
        for parent in (top, user):
            parent.mkdir(mode=0o711, exist_ok=True)
            os.chmod(parent, 0o711)  # noqa: S103 - traversable, not listable: sandbox uids reach their own
        self.root.mkdir(mode=0o700, exist_ok=True)
        self._own_path(self.root)

    def ensure(self) -> None:
        """The workspace exists and belongs to its owner. A session made before sandbox uids
        were allocated may have been given a new uid (its old one was shared): its files are
        re-owned, without following any link, so its sandbox can use them."""
        try:
            st = os.lstat(self.root)
        except FileNotFoundError:
            self.create()
            return
        if self.owner is None or not stat.S_ISDIR(st.st_mode) or (st.st_uid, st.st_gid) == self.owner:
            return
        fd = self._open_root()
        try:
            for _, dirs, files, dfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
                for name in (*dirs, *files):
                    with contextlib.suppress(FileNotFoundError):  # gone meanwhile
                        os.chown(name, *self.owner, dir_fd=dfd, follow_symlinks=False)
            os.fchown(fd, *self.owner)  # last: a crash halfway leaves the mismatch to retry
        finally:
            os.close(fd)

    def destroy(self) -> None:
        if self.root.is_symlink():
            self.root.unlink()
        elif self.root.exists():
            shutil.rmtree(self.root)  # fd-based on Linux: never follows links inside

    # ------------------------------------------------------------ descriptors

    def _own_fd(self, fd: int) -> None:
        if self.owner is not None:
            os.fchown(fd, *self.owner)

    def _own_path(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, *self.owner, follow_symlinks=False)

    def _open_root(self) -> int:
        try:
            try:
                return os.open(self.root, DIR_FLAGS)
            except FileNotFoundError:
                self.create()
                return os.open(self.root, DIR_FLAGS)
        except OSError as exc:  # the root itself is a link or no directory: refuse
            raise WorkspaceError(403, "The workspace is not accessible") from exc

    def _check_inside(self, fd: int, path: str) -> None:
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not real.is_relative_to(self.root.resolve()):
            raise WorkspaceError(403, f"Access denied: {path}")

    def _open_dir(self, parts: tuple[str, ...], *, create: bool = False, shown: str = "") -> int:
        fd = self._open_root()
        try:
            for part in parts:
                try:
                    nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
                    self._own_fd(nfd)
                os.close(fd)
                fd = nfd
            self._check_inside(fd, shown)
            return fd
        except OSError as exc:
            os.close(fd)
            raise _os_error(exc, shown or "/") from exc
        except BaseException:
            os.close(fd)
            raise

    def _parent(self, path: str, *, create: bool = False) -> tuple[int, str, tuple[str, ...]]:
        parts = clean_path(path)
        return self._open_dir(parts[:-1], create=create, shown=path), parts[-1], parts

    # ------------------------------------------------------------ queries

    def usage(self) -> int:
        return disk_usage(self.root)

    def tree(self) -> list[dict[str, Any]]:
        """Nested entries `{name, path, type, size?, children?}`, directories first."""
        fd = self._open_root()
        count = 0

        def walk(dfd: int, prefix: str, depth: int) -> list[dict[str, Any]]:
            nonlocal count
            entries: list[dict[str, Any]] = []
            with os.scandir(dfd) as it:
                items = sorted(it, key=lambda e: (not e.is_dir(follow_symlinks=False), e.name))
            for entry in items:
                count += 1
                if count > MAX_TREE_ENTRIES:
                    break
                rel = f"{prefix}{entry.name}"
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    node: dict[str, Any] = {"name": entry.name, "path": rel, "type": "directory", "children": []}
                    if depth < 32:
                        try:
                            child = os.open(entry.name, DIR_FLAGS, dir_fd=dfd)
                        except OSError:
                            child = -1
                        if child >= 0:
                            try:
                                node["children"] = walk(child, rel + "/", depth + 1)
                            finally:
                                os.close(child)
                elif stat.S_ISREG(st.st_mode):
                    node = {"name": entry.name, "path": rel, "type": "file", "size": st.st_size}
                elif stat.S_ISLNK(st.st_mode):
                    node = {"name": entry.name, "path": rel, "type": "symlink"}
                else:
                    node = {"name": entry.name, "path": rel, "type": "other"}
                entries.append(node)
            return entries

        try:
            return walk(fd, "", 0)
        finally:
            os.close(fd)

    def read(self, path: str) -> bytes:
        dfd, name, _ = self._parent(path)
        try:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as exc:
                raise _os_error(exc, path) from exc
        finally:
            os.close(dfd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise WorkspaceError(400, f"Not a regular file: {path}")
            if st.st_size > self.max_file_bytes:
                raise WorkspaceError(413, f"File too large to read ({st.st_size} bytes, limit {self.max_file_bytes})")
            self._check_inside(fd, path)
            chunks, size = [], 0
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_file_bytes:
                    raise WorkspaceError(413, f"File too large to read (limit {self.max_file_bytes} bytes)")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        dfd, name, _ = self._parent(path)
        try:
            os.stat(name, dir_fd=dfd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(dfd)

    # ------------------------------------------------------------ changes

    def write(self, path: str, content: bytes, *, exclusive: bool = False) -> int:
        """Write a file (parents created); `exclusive`: fail with 409 if it exists."""
        if len(content) > self.max_file_bytes:
            raise WorkspaceError(413, f"File too large ({len(content)} bytes, limit {self.max_file_bytes})")
        dfd, name, _ = self._parent(path, create=True)
        try:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                old = 0
            else:
                if not stat.S_ISREG(st.st_mode):
                    raise WorkspaceError(400, f"Not a regular file inside the workspace: {path}")
                old = st.st_blocks * 512
            if self.usage() - old + len(content) > self.max_total_bytes:
                raise WorkspaceError(413, f"The workspace is full (limit {self.max_total_bytes} bytes)")
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            flags |= os.O_EXCL if exclusive else 0
            try:
                fd = os.open(name, flags, 0o644, dir_fd=dfd)
            except OSError as exc:
                raise _os_error(exc, path) from exc
        finally:
            os.close(dfd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise WorkspaceError(400, f"Not a regular file: {path}")
            self._check_inside(fd, path)
            os.ftruncate(fd, 0)
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            self._own_fd(fd)
        except OSError as exc:
            raise _os_error(exc, path) from exc
        finally:
            os.close(fd)
        return len(content)

    def mkdir(self, path: str) -> None:
        dfd, name, _ = self._parent(path, create=True)
        try:
            os.mkdir(name, 0o755, dir_fd=dfd)
            fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
            try:
                self._own_fd(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _os_error(exc, path) from exc
        finally:
            os.close(dfd)

    def move(self, src: str, dst: str) -> None:
        src_parts, dst_parts = clean_path(src), clean_path(dst)
        if dst_parts[: len(src_parts)] == src_parts:
            raise WorkspaceError(400, "Cannot move a directory into itself")
        sfd, sname, _ = self._parent(src)
        try:
            dfd, dname, _ = self._parent(dst, create=True)
            try:
                os.stat(sname, dir_fd=sfd, follow_symlinks=False)  # 404 before 409
                try:
                    os.stat(dname, dir_fd=dfd, follow_symlinks=False)
                    raise WorkspaceError(409, f"Already exists: {dst}")
                except FileNotFoundError:
                    pass
                os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
            except OSError as exc:
                raise _os_error(exc, src) from exc
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def delete(self, path: str) -> None:
        dfd, name, _ = self._parent(path)
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=dfd)
            else:
                os.unlink(name, dir_fd=dfd)
        except OSError as exc:
            raise _os_error(exc, path) from exc
        finally:
            os.close(dfd)
