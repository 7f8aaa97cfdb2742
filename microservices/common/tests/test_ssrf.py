"""The SSRF guard against hostile URLs: none of these may pass."""

from __future__ import annotations

import ipaddress

import pytest

from harvis_common.ssrf import SSRFBlocked, SSRFPolicy, check_url, is_public_ip, parse

BLOCKED_URLS = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://localhost:8000/api/auth/me",
    "http://LOCALHOST./",
    "http://0.0.0.0:9000/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/router",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "ftp://example.com/",
    "javascript:alert(1)",
    "chrome://settings",
    "data:text/html,<h1>x</h1>",
    "http://user:pass@example.com/",
    "http://example.com\r\nHost: evil/",
    " http://example.com/",
    "http:///nohost",
    "http://example.com:99999/",
    "//example.com/no-scheme",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
async def test_hostile_urls_are_blocked(url: str) -> None:
    with pytest.raises(SSRFBlocked):
        await check_url(url)


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.215.14"])
def test_public_addresses_pass(ip: str) -> None:
    assert is_public_ip(ipaddress.ip_address(ip))


async def test_public_ip_literal_is_allowed_without_dns() -> None:
    target = await check_url("https://1.1.1.1:8443/x?y=1")
    assert (target.host, target.port, target.addresses) == ("1.1.1.1", 8443, ("1.1.1.1",))


async def test_allowlist_opens_only_what_it_names() -> None:
    policy = SSRFPolicy.from_setting("127.0.0.1/32, intranet.test")
    target = await check_url("http://127.0.0.1:8080/page", policy)
    assert target.addresses == ("127.0.0.1",)
    with pytest.raises(SSRFBlocked):
        await check_url("http://10.0.0.1/", policy)
    with pytest.raises(SSRFBlocked):
        await check_url("file:///etc/passwd", policy)  # the scheme rule stays


async def test_unresolvable_host_is_blocked_with_reason() -> None:
    with pytest.raises(SSRFBlocked, match="resolve"):
        await check_url("http://no-such-host.invalid/")


def test_ports_can_be_restricted() -> None:
    policy = SSRFPolicy(allowed_ports=frozenset({80, 443}))
    assert parse("https://example.com/", policy).port == 443
    with pytest.raises(SSRFBlocked):
        parse("http://example.com:6379/", policy)
