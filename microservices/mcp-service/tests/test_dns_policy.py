"""Issue 14: `dns_lookup` and `reverse_dns` must not map the internal network.

The DNS server here answers like an internal resolver would (container names,
a split-horizon zone, localhost, the metadata address, IPv4 hidden in IPv6). A
user must get none of those answers: forward lookups of names that resolve only
to non-public addresses and reverse lookups of non-public addresses are refused
with a clear error, non-public addresses in mixed answers are withheld, and
MCP_SSRF_ALLOWLIST still opens what the operator chose."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dns.exception import DNSException
from dns.name import from_text
from dns.reversename import to_address
from dns_server import DnsServer

ZONE = """
localhost A 127.0.0.1
localhost AAAA ::1
foo.localhost A 127.0.0.1
db.corp.test A 10.0.0.5
db.corp.test MX 10 mx.corp.test.
db.corp.test TXT "vault-token=internal"
metadata.test A 169.254.169.254
cgnat.test A 100.64.0.7
v6.test AAAA fd00::5
loop6.test AAAA ::1
mapped.test AAAA ::ffff:10.0.0.5
sixtofour.test AAAA 2002:a00:5::1
loop.test A 127.0.0.1
printer.local A 192.168.1.20
vault.internal TXT "internal only"
postgres A 172.18.0.5
mixed.test A 93.184.215.14
mixed.test A 10.0.0.5
public.test A 93.184.215.14
public.test MX 10 mail.public.test.
public.test TXT "hello"
5.0.0.10.in-addr.arpa PTR db.corp.test.
1.0.0.127.in-addr.arpa PTR localhost.
254.169.254.169.in-addr.arpa PTR metadata.test.
20.1.168.192.in-addr.arpa PTR printer.local.
7.0.64.100.in-addr.arpa PTR cgnat.test.
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa PTR localhost.
14.215.184.93.in-addr.arpa PTR public.test.
"""
# Every answer above that a user must never see.
SECRETS = (
    "10.0.0.5",
    "127.0.0.1",
    "169.254.169.254",
    "100.64.0.7",
    "fd00::5",
    "172.18.0.5",
    "192.168.1.20",
    "vault-token",
    "internal only",
)
SECRET_NAMES = ("db.corp.test", "localhost", "metadata.test", "printer.local", "cgnat.test", "mx.corp.test")


@pytest.fixture
async def dns() -> AsyncIterator[DnsServer]:
    server = await DnsServer.from_text(ZONE).start()
    try:
        yield server
    finally:
        server.stop()


def own_input(case: str) -> str:
    """What the caller wrote, in the spellings an error may echo it (lower case; the
    address a reverse-zone name spells)."""
    text = case.lower()
    if text.endswith(".arpa"):
        with contextlib.suppress(DNSException):  # a partial reverse zone spells no address
            text += " " + to_address(from_text(text))
    return text


def assert_refused(out: dict[str, Any], case: str, *, policy: bool = True) -> None:
    assert out["ok"] is False and out["error"], (case, out)
    assert "unexpectedly" not in out["error"], (case, out)
    if policy:
        assert "not allowed" in out["error"], (case, out)
    text, own = str(out), own_input(case)
    # The caller's own input may be echoed in the error; nothing the DNS server knows may be.
    assert not any(s in text for s in SECRETS if s not in own), (case, out)
    assert not any(n in text for n in SECRET_NAMES if n not in own), (case, out)


# Names an internal resolver answers with internal addresses only (or that are internal by name).
INTERNAL_NAMES = [
    ("localhost", "A"),
    ("LOCALHOST", "A"),
    ("localhost.", "AAAA"),
    ("foo.localhost", "A"),
    ("db.corp.test", "A"),
    ("db.corp.test", "MX"),  # other types of an internal name: refused too
    ("db.corp.test", "TXT"),
    ("metadata.test", "A"),
    ("cgnat.test", "A"),
    ("v6.test", "AAAA"),
    ("loop6.test", "AAAA"),
    ("mapped.test", "AAAA"),  # ::ffff:10.0.0.5
    ("sixtofour.test", "AAAA"),  # 2002:0a00:0005:: is 10.0.0.5 in 6to4
    ("loop.test", "A"),
    ("printer.local", "A"),
    ("vault.internal", "TXT"),
    ("postgres", "A"),  # a compose service name
    ("postgres", "TXT"),
    ("5.0.0.10.in-addr.arpa", "PTR"),  # a reverse lookup spelled as a forward one
    ("1.0.0.127.in-addr.arpa", "PTR"),
    ("254.169.254.169.in-addr.arpa", "PTR"),
    ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", "PTR"),
    ("10.in-addr.arpa", "NS"),  # the internal reverse zone itself
]
# IP literals and the legacy IPv4 spellings resolvers and inet_aton accept.
IPV4_FORMS = ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.0x0.0x0.0x1", "0177.0.0.1", "017700000001", "127.1"]
IP_LITERALS = ["::1", "[::1]", "10.0.0.5", "169.254.169.254", "::ffff:10.0.0.5", "::ffff:127.0.0.1", *IPV4_FORMS]


@pytest.mark.parametrize(("name", "rtype"), INTERNAL_NAMES)
async def test_forward_lookups_of_internal_names_are_refused(
    make_harness: Any, dns: DnsServer, name: str, rtype: str
) -> None:
    async with make_harness(mcp_dns_nameservers=dns.address, mcp_ssrf_allowlist="") as h:
        out = await h.call("dns_lookup", name=name, record_type=rtype)
        assert_refused(out, name)


@pytest.mark.parametrize("name", IP_LITERALS)
async def test_forward_lookups_of_addresses_are_refused(make_harness: Any, dns: DnsServer, name: str) -> None:
    async with make_harness(mcp_dns_nameservers=dns.address, mcp_ssrf_allowlist="") as h:
        for rtype in ("A", "PTR"):
            assert_refused(await h.call("dns_lookup", name=name, record_type=rtype), name, policy=False)
    assert dns.questions == [], "a name that is an address must not be sent to the DNS server"


NON_PUBLIC_IPS = [
    "127.0.0.1",
    "127.0.0.53",
    "::1",
    "0.0.0.0",
    "::",
    "10.0.0.5",
    "172.16.0.1",
    "192.168.1.20",
    "169.254.169.254",
    "100.64.0.7",
    "fd00::5",
    "fe80::1",
    "::ffff:10.0.0.5",  # IPv4-mapped IPv6
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "0:0:0:0:0:ffff:a00:5",
    "::ffff:169.254.169.254",
    "2002:a00:5::1",  # 6to4 of 10.0.0.5
    "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
    "[::1]",
]
MALFORMED_IPS = ["2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "017700000001", "127.1", "localhost"]


@pytest.mark.parametrize("ip", NON_PUBLIC_IPS)
async def test_reverse_lookups_of_non_public_addresses_are_refused(make_harness: Any, dns: DnsServer, ip: str) -> None:
    async with make_harness(mcp_dns_nameservers=dns.address, mcp_ssrf_allowlist="") as h:
        assert_refused(await h.call("reverse_dns", ip=ip), ip)
    assert dns.questions == [], "the refused address must not even reach the DNS server"


@pytest.mark.parametrize("ip", MALFORMED_IPS)
async def test_reverse_lookups_of_other_ipv4_spellings_are_refused(make_harness: Any, dns: DnsServer, ip: str) -> None:
    async with make_harness(mcp_dns_nameservers=dns.address, mcp_ssrf_allowlist="") as h:
        assert_refused(await h.call("reverse_dns", ip=ip), ip, policy=False)
    assert dns.questions == []


async def test_public_answers_still_work_and_internal_ones_are_withheld(make_harness: Any, dns: DnsServer) -> None:
    async with make_harness(mcp_dns_nameservers=dns.address, mcp_ssrf_allowlist="") as h:
        out = await h.call("dns_lookup", name="public.test")
        assert out["ok"] and out["result"]["records"] == ["93.184.215.14"], out
        out = await h.call("dns_lookup", name="public.test", record_type="MX")
        assert out["ok"] and out["result"]["records"] == ["10 mail.public.test."], out
        out = await h.call("dns_lookup", name="nowhere.test")
        assert out["ok"] and out["result"]["status"] == "NXDOMAIN", out
        mixed = await h.call("dns_lookup", name="mixed.test")
        assert mixed["ok"] and mixed["result"]["records"] == ["93.184.215.14"], mixed
        assert mixed["result"]["withheld"] == 1 and "10.0.0.5" not in str(mixed)
        rev = await h.call("reverse_dns", ip="93.184.215.14")
        assert rev["ok"] and rev["result"]["names"] == ["public.test"], rev
        # A top-level domain is one label but a public question (its name servers).
        tld = await h.call("dns_lookup", name="test", record_type="NS")
        assert tld["ok"], tld


async def test_the_allowlist_still_opens_what_the_operator_chose(make_harness: Any, dns: DnsServer) -> None:
    async with make_harness(mcp_dns_nameservers=dns.address, mcp_ssrf_allowlist="127.0.0.1/32, db.corp.test") as h:
        rev = await h.call("reverse_dns", ip="127.0.0.1")
        assert rev["ok"] and rev["result"]["names"] == ["localhost"], rev
        out = await h.call("dns_lookup", name="loop.test")
        assert out["ok"] and out["result"]["records"] == ["127.0.0.1"], out
        out = await h.call("dns_lookup", name="db.corp.test")  # allowlisted by name
        assert out["ok"] and out["result"]["records"] == ["10.0.0.5"], out
        # What the allowlist doesn't name stays closed.
        assert_refused(await h.call("reverse_dns", ip="10.0.0.5"), "10.0.0.5")
        assert_refused(await h.call("dns_lookup", name="metadata.test"), "metadata.test")
        assert_refused(await h.call("dns_lookup", name="loop6.test", record_type="AAAA"), "loop6.test")


async def test_mcp_view_refuses_with_a_clear_tool_error(make_harness: Any, dns: DnsServer) -> None:
    from test_registry import rpc

    async with make_harness(mcp_dns_nameservers=dns.address, mcp_ssrf_allowlist="") as h:
        r = await rpc(h, "tools/call", {"name": "reverse_dns", "arguments": {"ip": "169.254.169.254"}})
        result = r.json()["result"]
        assert result["isError"] is True and "not allowed" in result["content"][0]["text"], result
        assert "metadata.test" not in r.text
