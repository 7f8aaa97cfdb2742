"""The caller's IP address, as far as it can be trusted (for per-IP rate limits).

Only our own nginx may speak for the client: it sets `X-Real-IP $remote_addr`.
So the header is believed only when the direct peer is a trusted proxy
(loopback by default); any other peer is the client itself, and a header it
sends is ignored, since anyone can write one. `X-Forwarded-For` is never read:
its left-most entries are whatever the client wrote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"


def parse_networks(cidrs: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """`"127.0.0.0/8, 172.18.0.0/16"` (or a list of them) as networks."""
    items = cidrs.split(",") if isinstance(cidrs, str) else cidrs
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in items if c.strip())


def _parse_ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 peer seen through a dual-stack socket: judge it as IPv4.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(peer: str | None, real_ip_header: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    peer_ip = _parse_ip(peer)
    if peer_ip is None:
        return UNKNOWN
    if any(peer_ip in net for net in trusted):
        forwarded = _parse_ip(real_ip_header)
        if forwarded is not None:
            return str(forwarded)
    return str(peer_ip)
