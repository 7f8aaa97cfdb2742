"""The SSRF guard: may a service fetch this URL on a user's behalf?

Only http(s); the host is resolved and *every* address it resolves to must be
public — loopback, private, link-local (cloud metadata at 169.254.169.254),
CGNAT, multicast, reserved, unspecified, IPv6 ULA/link-local and IPv4 hidden
inside IPv6 (mapped, 6to4, Teredo) are refused. Callers connect to the
addresses returned here (not a fresh lookup), so DNS rebinding between check
and connect can't swap in an internal address, and they re-check every
redirect hop. An explicit allowlist (settings) opens chosen hosts or networks,
e.g. for local testing.

Stdlib only; `harvis_common.http_client` builds an aiohttp client on it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SSRFBlocked(ValueError):
    """The URL points somewhere a user may not send this service."""


@dataclass(frozen=True)
class SSRFPolicy:
    """What is allowed beyond the public internet (nothing, by default)."""

    allow_hosts: frozenset[str] = frozenset()  # exact host names, lower case
    allow_networks: tuple[IPNetwork, ...] = ()
    allowed_ports: frozenset[int] | None = None  # None: any port

    @classmethod
    def from_setting(cls, allowlist: str | Iterable[str]) -> SSRFPolicy:
        """`"localhost, 127.0.0.1/32, intranet.example"`: host names and CIDRs."""
        items = allowlist.split(",") if isinstance(allowlist, str) else list(allowlist)
        hosts: set[str] = set()
        nets: list[IPNetwork] = []
        for raw in items:
            item = raw.strip().lower()
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(nets))


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the vetted addresses) and what to say (host)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...] = field(default=())


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    # IPv4-compatible (deprecated ::a.b.c.d) and NAT64 well-known prefix.
    packed = ip.packed
    if packed[:12] == bytes(12) and packed[12:] != bytes(4):
        return ipaddress.IPv4Address(packed[12:])
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(packed[12:])
    return None


def is_public_ip(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_public_ip(inner)
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


def _allowed(ip: IPAddress, policy: SSRFPolicy) -> bool:
    return any(ip in net for net in policy.allow_networks if net.version == ip.version)


def parse(url: str, policy: SSRFPolicy | None = None) -> Target:
    """Check the URL's form (no network): scheme, host, port, no credentials."""
    policy = policy or SSRFPolicy()
    if not isinstance(url, str) or len(url) > 8192:
        raise SSRFBlocked("URL missing or too long")
    if any(c in url for c in "\r\n\t\x00") or url != url.strip():
        raise SSRFBlocked("URL contains control characters or spaces")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise SSRFBlocked(f"scheme {scheme or '(none)'!r} is not allowed: only http and https")
    if parts.username is not None or parts.password is not None:
        raise SSRFBlocked("URLs with credentials are not allowed")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise SSRFBlocked("URL has no host")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise SSRFBlocked("URL has an invalid port") from exc
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise SSRFBlocked(f"port {port} is not allowed")
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise SSRFBlocked("URL host is not a valid name") from exc
    return Target(url=url, scheme=scheme, host=host, port=port)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses of `host` (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SSRFBlocked(f"cannot resolve host {host!r}") from exc
    # Drop any IPv6 zone ("%eth0") before parsing.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


async def check_url(url: str, policy: SSRFPolicy | None = None) -> Target:
    """Parse, resolve and vet a URL; raises SSRFBlocked with the reason."""
    policy = policy or SSRFPolicy()
    target = parse(url, policy)
    addresses = await resolve(target.host, target.port)
    if not addresses:
        raise SSRFBlocked(f"host {target.host!r} has no addresses")
    if target.host not in policy.allow_hosts:
        for ip in addresses:
            if not is_public_ip(ip) and not _allowed(ip, policy):
                raise SSRFBlocked(f"host {target.host!r} resolves to a non-public address ({ip})")
    return Target(target.url, target.scheme, target.host, target.port, tuple(str(ip) for ip in addresses))
