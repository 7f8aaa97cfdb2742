"""What the DNS tools may tell a user: the SSRF policy, applied to names and answers.

The DNS tools connect nowhere but the configured resolver, yet its answers map
the network it serves: compose service names, split-horizon zones, localhost,
metadata addresses. So, with the same policy as every other network tool
(`harvis_common.ssrf`: public addresses, plus what MCP_SSRF_ALLOWLIST opens):

- reverse lookups of non-public addresses are refused before any query;
- forward lookups of local names (single labels, `localhost`, `.local`,
  `.internal`...) and of reverse-zone names that spell a non-public address are
  refused before any query;
- address answers keep only allowed addresses; a name with nothing left is
  refused, and so are other record types of a name whose addresses are all
  non-public (its MX/TXT/SRV are the internal network's too).

A name the allowlist names exactly is answered in full.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.reversename

from harvis_common.ssrf import IPAddress, SSRFPolicy, _allowed, is_public_ip

from .registry import ToolError

# Names that only mean something inside a network: RFC 6761/6762/8375 special-use
# names and the suffixes ICANN won't delegate because private networks use them.
LOCAL_SUFFIXES = (
    "localhost",
    "local",
    "internal",
    "home.arpa",
    "localdomain",
    "lan",
    "intranet",
    "corp",
    "home",
    "private",
)
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
# Record types a top-level domain (one label) is publicly asked for.
TLD_TYPES = frozenset({"NS", "SOA"})


def address_allowed(ip: IPAddress, policy: SSRFPolicy) -> bool:
    return is_public_ip(ip) or _allowed(ip, policy)


def check_reverse(ip: IPAddress, policy: SSRFPolicy) -> None:
    if not address_allowed(ip, policy):
        raise ToolError(f"{ip} is not a public address: reverse lookups of it are not allowed")


def _under(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def check_name(name: str, record_type: str, policy: SSRFPolicy) -> None:
    """Refuse, before any query, a name that can only be answered by the local network.
    `name` is already validated (targets.hostname: lower case, no trailing dot)."""
    if name in policy.allow_hosts:
        return
    if any(_under(name, zone) for zone in REVERSE_ZONES):
        try:
            ip = ipaddress.ip_address(dns.reversename.to_address(dns.name.from_text(name)))
        except (dns.exception.DNSException, ValueError):
            raise ToolError(
                f"{name!r} is not the reverse name of one whole address: not allowed (use reverse_dns)"
            ) from None
        check_reverse(ip, policy)
        return
    if "." not in name and record_type not in TLD_TYPES:
        raise ToolError(
            f"{name!r} is a single-label name, which only local resolvers answer (containers, search "
            f"domains): not allowed; for a top-level domain ask for {', '.join(sorted(TLD_TYPES))}"
        )
    if any(_under(name, suffix) for suffix in LOCAL_SUFFIXES):
        raise ToolError(f"{name!r} is a local or internal name: not allowed")


def filter_addresses(name: str, addresses: list[IPAddress], policy: SSRFPolicy) -> tuple[list[IPAddress], int]:
    """The allowed addresses of `name` and how many were withheld; refuses a name
    whose every address is non-public (the answer would be internal only)."""
    if name in policy.allow_hosts:
        return addresses, 0
    kept = [ip for ip in addresses if address_allowed(ip, policy)]
    if addresses and not kept:
        raise ToolError(f"{name!r} resolves only to non-public addresses: not allowed")
    return kept, len(addresses) - len(kept)
