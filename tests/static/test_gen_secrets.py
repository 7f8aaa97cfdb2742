"""scripts/gen_secrets.py makes keys that harvis_common's loaders accept, by either route."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from harvis_static import MICRO, REQUIRED_SECRETS, ROOT, env_example

sys.path.insert(0, str(MICRO / "common"))
from harvis_common.internal_auth import (
    InternalSigner,
    InternalVerifier,
    load_private_key,
    load_public_key,
)

SCRIPT = ROOT / "scripts" / "gen_secrets.py"
ROUTES = [
    pytest.param([], id="cryptography"),
    pytest.param(["--openssl"], id="openssl"),  # Debian's openssl: always there
]


def run(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize("route", ROUTES)
def test_keys_load_and_work_together(route: list[str]) -> None:
    values = parse(run(*route))
    assert set(values) == set(REQUIRED_SECRETS)

    from cryptography.hazmat.primitives import serialization as s

    private = load_private_key(values["INTERNAL_AUTH_PRIVATE_KEY"])
    public = load_public_key(values["INTERNAL_AUTH_PUBLIC_KEY"])
    raw = s.Encoding.Raw, s.PublicFormat.Raw
    assert private.public_key().public_bytes(*raw) == public.public_bytes(*raw), "the two halves must match"
    for name in ("INTERNAL_AUTH_PRIVATE_KEY", "INTERNAL_AUTH_PUBLIC_KEY"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", values[name]), f"{name}: base64url of 32 bytes, unpadded"

    token = InternalSigner(values["INTERNAL_AUTH_PRIVATE_KEY"]).sign(
        "voice-service", user_id=7, email="a@b.c", username="a"
    )
    identity = InternalVerifier(values["INTERNAL_AUTH_PUBLIC_KEY"], "voice-service").verify(token)
    assert identity.user_id == 7

    assert len(values["JWT_SECRET"]) >= 64  # token_urlsafe(48); core-api requires >= 32
    assert re.fullmatch(r"[A-Za-z0-9_-]{24,}", values["POSTGRES_PASSWORD"]), "URL-safe: it goes into DATABASE_URL"


def test_each_run_is_fresh() -> None:
    first, second = parse(run()), parse(run())
    assert all(first[k] != second[k] for k in first)


def test_update_fills_only_the_blanks(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    env.write_text(example.replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=kept-as-is\n"), encoding="utf-8")
    env.chmod(0o644)

    run("--update", str(env))
    values = parse(env.read_text(encoding="utf-8"))
    assert values["POSTGRES_PASSWORD"] == "kept-as-is"
    assert all(values[k] for k in REQUIRED_SECRETS)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    # The rest of the file is untouched, and nothing is listed twice.
    assert env.read_text(encoding="utf-8").count("JWT_SECRET=") == 1
    assert "COMPOSE_PROFILES=cpu" in env.read_text(encoding="utf-8")

    before = env.read_text(encoding="utf-8")
    run("--update", str(env))
    assert env.read_text(encoding="utf-8") == before, "a second run changes nothing"


def test_update_refuses_half_a_key_pair(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("INTERNAL_AUTH_PRIVATE_KEY=abc\nINTERNAL_AUTH_PUBLIC_KEY=\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--update", str(env)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert env.read_text(encoding="utf-8") == "INTERNAL_AUTH_PRIVATE_KEY=abc\nINTERNAL_AUTH_PUBLIC_KEY=\n"


def test_secrets_it_writes_are_the_ones_env_example_asks_for() -> None:
    entries = env_example()
    for name in parse(run()):
        assert name in entries and entries[name].active and entries[name].value == ""
