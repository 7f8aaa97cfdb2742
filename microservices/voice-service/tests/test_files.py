"""Audio files: unguessable names, owner-only, no traversal, age-based cleanup."""

from __future__ import annotations

import os
import time
from pathlib import Path

from voice_service.store.files import URL_PREFIX, AudioStore


def test_save_and_owner_only(audio_root: Path) -> None:
    store = AudioStore(audio_root)
    url = store.save(7, b"RIFFdata")
    assert url.startswith(URL_PREFIX) and url.endswith(".wav")
    name = url.removeprefix(URL_PREFIX)
    assert len(name) == 36  # 128 random bits in hex
    assert store.path_for(7, name) is not None
    assert store.path_for(8, name) is None  # another user
    assert store.save(7, b"x") != url


def test_traversal_and_bad_names(audio_root: Path) -> None:
    store = AudioStore(audio_root)
    store.save(1, b"x")
    (audio_root / "secret.wav").write_bytes(b"s")
    for name in ("../secret.wav", "..%2fsecret.wav", "/etc/passwd", "secret.wav", "..", "", "A" * 32 + ".wav"):
        assert store.path_for(1, name) is None, name


def test_cleanup_by_age(audio_root: Path) -> None:
    store = AudioStore(audio_root)
    old = store.save(1, b"old").removeprefix(URL_PREFIX)
    new = store.save(1, b"new").removeprefix(URL_PREFIX)
    gone_user = store.save(2, b"old2").removeprefix(URL_PREFIX)
    past = time.time() - 7200
    for uid, name in ((1, old), (2, gone_user)):
        os.utime(audio_root / str(uid) / name, (past, past))
    assert store.cleanup(3600) == 2
    assert store.path_for(1, old) is None and store.path_for(1, new) is not None
    assert not (audio_root / "2").exists()  # empty user directories go too
