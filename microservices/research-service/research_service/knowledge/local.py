"""Files of the local sources (local_docs, ansible_playbooks), read only under the operator's
RAG_LOCAL_ROOTS: every path is resolved (symbolic links and `..` followed) and must land
inside a root, so neither a user's `ansible_paths` nor a link in a root reaches `/etc`."""

from __future__ import annotations

import os

MAX_FILES = 2000  # per source per job


def confined(path: str, roots: list[str]) -> str | None:
    """`path` resolved, when it lies in one of `roots`; else None."""
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return real
    return None


def list_files(
    dirs: list[str], roots: list[str], endings: tuple[str, ...], max_bytes: int
) -> tuple[list[str], list[str]]:
    """(the readable files under `dirs` with one of `endings`, sorted; what was skipped and why).
    Blocking: call it in a thread."""
    found: dict[str, None] = {}
    skipped: list[str] = []
    for d in dirs:
        top = confined(d, roots)
        if top is None or not os.path.isdir(top):
            skipped.append(f"{d}: not a directory under the allowed roots")
            continue
        for here, subdirs, names in os.walk(top, followlinks=False):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or not name.lower().endswith(endings):
                    continue
                real = confined(os.path.join(here, name), roots)
                if real is None:
                    skipped.append(f"{os.path.join(here, name)}: links outside the allowed roots")
                    continue
                try:
                    size = os.path.getsize(real)
                except OSError as exc:
                    skipped.append(f"{real}: {exc.strerror}")
                    continue
                if size > max_bytes:
                    skipped.append(f"{real}: larger than {max_bytes:,} bytes")
                    continue
                found[real] = None
                if len(found) >= MAX_FILES:
                    skipped.append(f"more than {MAX_FILES} files: the rest were not read")
                    return list(found), skipped
    return list(found), skipped


def read_local(path: str, roots: list[str], max_bytes: int) -> tuple[str, str, bytes] | None:
    """(the file's resolved path, its path under its root, its first max_bytes + 1 bytes), or
    None when it is gone or no longer under a root. Blocking."""
    real = confined(path, roots)
    if real is None or not os.path.isfile(real):
        return None
    root = next(os.path.realpath(r) for r in roots if confined(real, [r]))
    with open(real, "rb") as fh:
        return real, os.path.relpath(real, root), fh.read(max_bytes + 1)
