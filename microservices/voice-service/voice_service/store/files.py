"""Generated audio on disk: `<dir>/<user_id>/<random>.wav`, served to its owner only.

Names are 128 random bits (unguessable) and must match a strict pattern before any path
is built (no traversal); the owner's id is part of the path, so another user's request
looks in its own directory and finds nothing (404). Files older than
VOICE_AUDIO_MAX_AGE_H are removed by `cleanup()`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from pathlib import Path

NAME = re.compile(r"^[0-9a-f]{32}\.wav$")
URL_PREFIX = "/api/audio/"


class AudioStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o750)

    def _user_dir(self, user_id: int) -> Path:
        return self.root / str(int(user_id))

    def save(self, user_id: int, wav: bytes) -> str:
        """Write `wav` for `user_id`; returns its URL path (`/api/audio/<name>.wav`)."""
        d = self._user_dir(user_id)
        d.mkdir(parents=True, exist_ok=True, mode=0o750)
        name = secrets.token_hex(16) + ".wav"
        tmp = d / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(wav)
        os.replace(tmp, d / name)
        return URL_PREFIX + name

    def path_for(self, user_id: int, name: str) -> Path | None:
        """The file's path if `name` is a valid name of an existing file of this user."""
        if not NAME.fullmatch(name):
            return None
        path = self._user_dir(user_id) / name
        return path if path.is_file() else None

    def cleanup(self, max_age_s: float) -> int:
        """Remove files (and stray temporaries) older than `max_age_s`; returns how many."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - max_age_s
        removed = 0
        for d in self.root.iterdir():
            if not d.is_dir() or not d.name.isdigit():
                continue
            for f in d.iterdir():
                try:
                    if f.is_file() and f.stat().st_mtime < cutoff:
                        f.unlink()
                        removed += 1
                except FileNotFoundError:
                    pass
            with contextlib.suppress(OSError):
                d.rmdir()  # only succeeds when empty
        return removed
