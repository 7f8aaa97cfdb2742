"""Which replica owns a session: the replica's ordinal, carried inside the session id.

A browser session (one Chromium) and a vibe-coding session (its workspace, sandboxes and
terminal) live in one replica of their service. The service mints the session's id as an
RFC 9562 UUIDv8 — the version for vendor-defined layouts — with its own ordinal in the 12
bits after the version nibble; the gateway reads it back and sends every request naming the
session to that replica. Ids stay UUID strings (the front end and the database treat them as
such) with 110 random bits. A UUID of another version (an id minted before replicas, or by
hand) carries no ordinal: it belongs to replica 0, the one a single-replica fleet has.

    xxxxxxxx-xxxx-8RRR-vxxx-xxxxxxxxxxxx   R: the ordinal (hex), v: the RFC variant (8..b)
"""

from __future__ import annotations

import secrets
import uuid

MAX_ORDINAL = 0xFFF
_VERSION_AT = 14  # index of the version digit in the 36-character form


def mint_session_id(ordinal: int) -> str:
    """A new session id owned by replica `ordinal`."""
    if not 0 <= ordinal <= MAX_ORDINAL:
        raise ValueError(f"replica ordinal {ordinal} is outside 0..{MAX_ORDINAL}")
    value = secrets.randbits(128)
    value &= ~(0xFFFF << 64)  # clear version and ordinal (bits 64..79)
    value |= (0x8 << 76) | (ordinal << 64)
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # the RFC 9562 variant
    return str(uuid.UUID(int=value))


def owner_ordinal(session_id: str) -> int | None:
    """The ordinal a session id carries (0 for a UUID without one); None when `session_id`
    is not a UUID at all (the service answers that as it always did)."""
    if len(session_id) != 36:
        return None
    try:
        parsed = uuid.UUID(session_id)
    except ValueError:
        return None
    if parsed.version != 8:
        return 0
    return (parsed.int >> 64) & MAX_ORDINAL
