"""Is a WebSocket upgrade's Origin our own? (cross-site WebSocket hijacking)

A page on any site can open a WebSocket to us, and the browser attaches our
cookie to it (SameSite=Lax still sends it same-site, e.g. from another port of
the same host, and older browsers always did). Unlike fetch, the WebSocket
handshake has no CORS preflight: the only defence is the Origin header, which
browsers always send on an upgrade and pages cannot forge. So an upgrade that
authenticates with the cookie alone must come from our own origin (the host the
browser addressed, as nginx passes it in Host) or one configured as allowed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port, brackets that don't close…
        return None
    if not host:
        return None
    return host.lower().rstrip("."), port if port is not None else DEFAULT_PORTS.get(scheme, -1)


def normalise_origin(origin: str) -> str | None:
    """`scheme://host:port`, lower-cased, the default port made explicit; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    found = _host_port(parts.netloc, scheme)
    if found is None:
        return None
    return f"{scheme}://{found[0]}:{found[1]}"


def parse_allowed(origins: str) -> frozenset[str]:
    """WEBSOCKET_ALLOWED_ORIGINS as a set of normalised origins (bad entries are errors)."""
    out = set()
    for item in origins.split(","):
        if not item.strip():
            continue
        normal = normalise_origin(item)
        if normal is None:
            raise ValueError(f"WEBSOCKET_ALLOWED_ORIGINS: {item.strip()!r} is not an origin (scheme://host[:port])")
        out.add(normal)
    return frozenset(out)


def origin_allowed(origin: str, host: str | None, allowed: frozenset[str] = frozenset()) -> bool:
    """True when `origin` is the request's own host (same host and port; the scheme is the
    page's) or one of `allowed`. "null", garbage and a missing Host are not allowed."""
    normal = normalise_origin(origin)
    if normal is None:
        return False
    if normal in allowed:
        return True
    if not host:
        return False
    scheme = normal.partition("://")[0]
    own = _host_port(host.strip(), scheme)
    origin_hp = _host_port(normal.partition("://")[2], scheme)
    return own is not None and own == origin_hp
