#!/usr/bin/env python3
"""Fresh secrets for a Harvis deployment, as .env lines.

    python3 scripts/gen_secrets.py                   # print them
    python3 scripts/gen_secrets.py --update .env     # fill the empty ones in .env (mode 0600)

Prints JWT_SECRET (signs user tokens), the Ed25519 pair that signs and verifies the
internal X-Internal-Auth header (INTERNAL_AUTH_PRIVATE_KEY for core-api only,
INTERNAL_AUTH_PUBLIC_KEY for every service; each the base64url of the 32 raw key bytes,
without padding, as harvis_common.internal_auth loads them), POSTGRES_PASSWORD
(URL-safe: it is written into DATABASE_URL) and API_KEY_ENCRYPTION_KEY (base64url of 32
random bytes: the AES-256-GCM key for users' stored provider API keys, core-api only).

Stdlib only: the keypair comes from `cryptography` when it is importable, else from
`openssl genpkey -algorithm ed25519`.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

# DER framing of an Ed25519 key (RFC 8410): PKCS#8 private key, SubjectPublicKeyInfo public key.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keypair_cryptography() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    raw_private = key.private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption())
    raw_public = key.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return raw_private, raw_public


def keypair_openssl() -> tuple[bytes, bytes]:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("gen_secrets: need either the `cryptography` package or the `openssl` command")
    private_der = subprocess.run(
        [openssl, "genpkey", "-algorithm", "ed25519", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    public_der = subprocess.run(
        [openssl, "pkey", "-inform", "DER", "-pubout", "-outform", "DER"],
        input=private_der,
        check=True,
        capture_output=True,
    ).stdout
    if not (len(private_der) == 48 and private_der.startswith(_PKCS8_PREFIX)):
        raise SystemExit("gen_secrets: unexpected private key encoding from openssl")
    if not (len(public_der) == 44 and public_der.startswith(_SPKI_PREFIX)):
        raise SystemExit("gen_secrets: unexpected public key encoding from openssl")
    return private_der[-32:], public_der[-32:]


def keypair(use_openssl: bool = False) -> tuple[bytes, bytes]:
    if not use_openssl:
        try:
            return keypair_cryptography()
        except ImportError:
            pass
    return keypair_openssl()


def generate(use_openssl: bool = False) -> dict[str, str]:
    raw_private, raw_public = keypair(use_openssl)
    return {
        "JWT_SECRET": secrets.token_urlsafe(48),
        "INTERNAL_AUTH_PRIVATE_KEY": b64url(raw_private),
        "INTERNAL_AUTH_PUBLIC_KEY": b64url(raw_public),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "API_KEY_ENCRYPTION_KEY": b64url(secrets.token_bytes(32)),
    }


_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_PAIR = ("INTERNAL_AUTH_PRIVATE_KEY", "INTERNAL_AUTH_PUBLIC_KEY")


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _ASSIGNMENT.match(line.strip())
            if m:
                values[m.group(1)] = m.group(2).strip().strip("'\"")
    return values


def update_env_file(path: Path, values: dict[str, str], force: bool = False) -> list[str]:
    """Set each variable that is missing or empty in `path` (every one with force);
    other lines stay as they are. The Ed25519 pair is only ever written whole.
    Returns the names written."""
    current = read_env_file(path)
    todo = {n for n in values if force or not current.get(n)}
    pair_todo = todo & set(_PAIR)
    if pair_todo and pair_todo != set(_PAIR):
        have = ", ".join(sorted(set(_PAIR) - pair_todo))
        raise SystemExit(f"gen_secrets: {path} has {have} but not its other half: fill both (--force replaces all)")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    written: list[str] = []
    for i, line in enumerate(lines):
        m = _ASSIGNMENT.match(line.strip())
        if m and m.group(1) in todo and m.group(1) not in written:
            lines[i] = f"{m.group(1)}={values[m.group(1)]}"
            written.append(m.group(1))
    for name in values:
        if name in todo and name not in written:
            lines.append(f"{name}={values[name]}")
            written.append(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # also when the file existed with wider permissions
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", metavar="ENV_FILE", type=Path, help="fill missing or empty values in this file")
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --update: replace existing values too (a new POSTGRES_PASSWORD does not change an "
        "existing database's password)",
    )
    parser.add_argument(
        "--openssl", action="store_true", help="make the keypair with openssl even if cryptography is there"
    )
    args = parser.parse_args(argv)

    values = generate(args.openssl)
    if args.update is None:
        for name, value in values.items():
            print(f"{name}={value}")
        return 0
    written = update_env_file(args.update, values, args.force)
    kept = [n for n in values if n not in written]
    print(f"{args.update}: wrote {', '.join(written) or 'nothing'}" + (f"; kept {', '.join(kept)}" if kept else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
