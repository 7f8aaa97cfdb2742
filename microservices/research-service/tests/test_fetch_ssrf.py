"""Fetch + extract against the fixture web on 127.0.0.3, time budgets, and the SSRF guard:
a canary server on 127.0.0.1 must never be reached, whatever form its address takes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from research_web import ARTICLES, BOILERPLATE_MARKERS

from harvis_common.http_client import SafeHTTPClient
from harvis_common.ssrf import SSRFPolicy
from harvis_testkit import serve_app
from research_service.fetch import PageFetcher
from research_service.store.cache import MemoryCache

from .conftest import SLOW_S, Background


class Canary:
    hits = 0


@pytest.fixture(scope="module")
def canary(background: Background) -> Iterator[int]:
    """A server on 127.0.0.1 (like core-api): any request reaching it is a failure."""

    async def handler(_: web.Request) -> web.Response:
        Canary.hits += 1
        return web.Response(text="<html><body><article><p>SECRET internal data</p></article></body></html>",
                            content_type="text/html")  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, url = background.run(serve_app(app))
    yield int(url.rsplit(":", 1)[1])
    background.run(runner.cleanup())


def make_fetcher(budget_s: float = 10.0, page_timeout_s: float = 10.0, max_bytes: int = 2_000_000) -> PageFetcher:
    http = SafeHTTPClient(SSRFPolicy.from_setting("127.0.0.3/32"))
    return PageFetcher(
        http, MemoryCache(60), page_timeout_s=page_timeout_s, budget_s=budget_s, max_bytes=max_bytes, concurrency=6
    )


async def test_extraction_quality_on_every_fixture_article(site) -> None:
    fetcher = make_fetcher()
    try:
        pages = await fetcher.fetch_many([f"{site.base}/articles/{slug}.html" for slug in ARTICLES])
    finally:
        await fetcher.http.close()
    for slug, page in zip(ARTICLES, pages, strict=True):
        title, paras = ARTICLES[slug]
        assert page.ok, (slug, page.error)
        assert page.title.startswith(title.split(":")[0])
        for p in paras:  # the main text, whole
            assert p in page.content, (slug, p[:40])
        for marker in BOILERPLATE_MARKERS:  # and none of the page's furniture
            assert marker not in page.content, (slug, marker)
        assert page.date and page.date.startswith("2024")


async def test_redirects_slow_broken_and_non_html(site) -> None:
    fetcher = make_fetcher(budget_s=1.5, page_timeout_s=5)
    start = time.monotonic()
    try:
        pages = await fetcher.fetch_many(
            [f"{site.base}/redirect/rust-language", f"{site.base}/slow", f"{site.base}/broken", f"{site.base}/file.pdf"]
        )
    finally:
        await fetcher.http.close()
    elapsed = time.monotonic() - start
    assert elapsed < SLOW_S / 2, elapsed  # the slow page does not hold the answer beyond the budget
    red, slow, broken, pdf = pages
    assert red.ok and red.final_url.endswith("/articles/rust-language.html") and "borrow checker" in red.content
    assert "budget" in (slow.error or "")
    assert broken.error == "HTTP 500" and not broken.ok
    assert pdf.error and "application/pdf" in pdf.error


async def test_per_page_timeout_and_size_cap(site) -> None:
    fetcher = make_fetcher(budget_s=10, page_timeout_s=0.5, max_bytes=50_000)
    try:
        slow, huge = await fetcher.fetch_many([f"{site.base}/slow", f"{site.base}/huge.html"])
    finally:
        await fetcher.http.close()
    assert "timed out" in (slow.error or "")
    assert len(huge.content) < 50_000


async def test_pages_are_cached(site) -> None:
    fetcher = make_fetcher()
    url = f"{site.base}/articles/solar-power.html"
    try:
        before = site.hits["/articles/solar-power.html"]
        a = await fetcher.fetch_one(url)
        b = await fetcher.fetch_one(url + "?utm_source=x")  # the same page, normalised
    finally:
        await fetcher.http.close()
    assert a.ok and b.content == a.content
    assert site.hits["/articles/solar-power.html"] == before + 1


def ssrf_payloads(port: int, web_base: str) -> list[str]:
    """Hostile URLs: every one points at the canary on 127.0.0.1:<port>, another private or
    special address, or a forbidden scheme, directly or through a redirect chain."""
    p = port
    loop_forms = [
        "127.0.0.1", "127.1", "127.0.1", "127.000.000.001", "0177.0.0.1", "0177.0000.0000.0001", "0x7f.0.0.1",
        "0x7f000001", "2130706433", "017700000001", "0x7f.0x0.0x0.0x1", "127.0.0.255", "127.255.255.254",
        "localhost", "LOCALHOST", "localhost.", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
        "[0:0:0:0:0:ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::127.0.0.1]", "[2002:7f00:1::]", "0.0.0.0",
        "0", "[::]", "[0:0:0:0:0:0:0:0]", "ip6-localhost",
    ]  # fmt: skip
    urls = [f"http://{h}:{p}/" for h in loop_forms]
    urls += [f"https://{h}:{p}/" for h in ("127.0.0.1", "localhost")]
    other_forms = [
        "169.254.169.254", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "2852039166", "0xa9fea9fe",
        "0251.0376.0251.0376", "metadata.google.internal", "10.0.0.1", "10.255.255.254", "172.16.0.1",
        "172.31.255.254", "192.168.0.1", "192.168.1.1", "100.64.0.1", "198.18.0.1", "[fc00::1]", "[fd00::1]",
        "[fe80::1]", "224.0.0.1", "255.255.255.255", "240.0.0.1", "192.0.0.1",
    ]  # fmt: skip
    urls += [f"http://{h}/latest/meta-data/" for h in other_forms]
    urls += [
        "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", f"ftp://127.0.0.1:{p}/", "dict://127.0.0.1:11211/",
        f"http://user:pass@127.0.0.3:{p}/", f"http://127.0.0.3@127.0.0.1:{p}/", "javascript:alert(1)",
        f"http://127.0.0.1:{p}\\@127.0.0.3/", "//127.0.0.1/",
    ]  # fmt: skip
    # Redirect chains from the allowed fixture web to forbidden places.
    targets = [
        f"http://127.0.0.1:{p}/",
        f"http://localhost:{p}/",
        f"http://2130706433:{p}/",
        f"http://[::ffff:127.0.0.1]:{p}/",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ]
    for target in targets:
        urls.append(f"{web_base}/go?to={target}")
        urls.append(f"{web_base}/go?to={web_base}/go?to={target}")
    urls += [f"{web_base}/to-loopback", f"{web_base}/to-metadata"]
    return urls


async def test_ssrf_payloads_are_all_blocked(site, canary: int) -> None:
    payloads = ssrf_payloads(canary, site.base)
    assert len(payloads) >= 60
    fetcher = make_fetcher(budget_s=30, page_timeout_s=3)
    Canary.hits = 0
    try:
        pages = await fetcher.fetch_many(payloads)
    finally:
        await fetcher.http.close()
    for url, page in zip(payloads, pages, strict=True):
        assert not page.ok and "SECRET" not in page.content, url
        assert page.error, url
    assert Canary.hits == 0
    # the redirect chains were refused by the guard at the hop, not by chance
    chain = pages[payloads.index(f"{site.base}/to-loopback")]
    assert chain.blocked and "127.0.0.1" in (chain.error or "")


async def test_loopback_is_reachable_only_when_allowlisted(canary: int) -> None:
    """The control: the canary really answers, so the test above proves the guard."""
    http = SafeHTTPClient(SSRFPolicy.from_setting("127.0.0.1/32"))
    fetcher = PageFetcher(http, MemoryCache(0), page_timeout_s=3, budget_s=3, max_bytes=10_000, concurrency=1)
    try:
        page = await fetcher.fetch_one(f"http://127.0.0.1:{canary}/")
    finally:
        await http.close()
    assert page.ok and "SECRET" in page.content
