"""Strict grammar for what network tools aim at: host names, IP literals, ports,
DNS names. Anything else (spaces, shell metacharacters, leading dashes such as
`-oProxyCommand=...`, URLs, control characters) is refused before it gets near
a socket or a subprocess."""

from __future__ import annotations

import ipaddress
import re
import socket

from harvis_common.ssrf import SSRFBlocked, SSRFPolicy, _allowed, is_public_ip, resolve

from .registry import ToolError

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")  # SRV/TXT names: _dmarc, _sip._tcp


def ip_literal(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if "%" in text:  # zone ids: not for user input
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _legacy_ipv4(value: str) -> bool:
    """`0x7f.1`, `2130706433`, `0177.0.0.1`, `127.1`: what inet_aton (and so resolvers
    and getaddrinfo) reads as an address though it isn't dotted decimal."""
    try:
        socket.inet_aton(value.rstrip("."))
    except OSError:
        return False
    return True


def hostname(value: str, *, dns_name: bool = False, allow_ip: bool = True) -> str:
    """A host name (IDNA-encoded, lower case, no trailing dot) or an IP literal.
    `dns_name` also admits underscores (service labels) for DNS queries."""
    if not isinstance(value, str) or not value or len(value) > 253 + 2:
        raise ToolError("target must be a host name or an IP address")
    if value != value.strip() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ToolError("target must not contain spaces or control characters")
    if value.startswith("-"):
        raise ToolError("target must not start with '-'")
    ip = ip_literal(value)
    if ip is not None:
        if not allow_ip:
            raise ToolError("a host name is required here, not an IP address")
        return str(ip)
    if _legacy_ipv4(value):
        raise ToolError(
            "target is an IPv4 address in a legacy form (hex, octal, decimal or short): write it as a.b.c.d"
        )
    try:
        ascii_name = value.rstrip(".").encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        raise ToolError("target is not a valid host name") from None
    labels = ascii_name.split(".")
    pattern = _DNS_LABEL if dns_name else _LABEL
    if not ascii_name or len(ascii_name) > 253 or not all(pattern.match(label) for label in labels):
        raise ToolError("target is not a valid host name (letters, digits, '-' and '.' only)")
    if labels[-1].isdigit():  # no numeric top-level domains: a mangled IP
        raise ToolError("target is not a valid host name or IP address")
    return ascii_name


async def vetted_addresses(host: str, policy: SSRFPolicy, port: int = 0) -> list[str]:
    """Resolve a validated host; every address must be public or allowlisted."""
    try:
        addresses = await resolve(host, port)
    except SSRFBlocked as exc:
        raise ToolError(str(exc)) from None
    if not addresses:
        raise ToolError(f"host {host!r} has no addresses")
    if host not in policy.allow_hosts:
        for ip in addresses:
            if not is_public_ip(ip) and not _allowed(ip, policy):
                raise ToolError(f"target {host!r} is a non-public address ({ip}): not allowed")
    return [str(ip) for ip in addresses]
