"""A small fixture "web" for research-service tests: realistic HTML articles (navigation,
cookie banners, sidebars, footers around the main text), plus the awkward cases —
redirects, a slow page, a broken page (500), a non-HTML file (PDF), an oversize page,
and redirects to 127.0.0.1 and to the cloud metadata address.

    python tests/e2e/sites/research_web.py --host 127.0.0.3 --port 18631

Paths: /articles/<slug>.html, /redirect/<slug> (302 → the article), /slow (sleeps SLOW_S),
/broken (500), /file.pdf, /huge.html, /to-loopback (302 → http://127.0.0.1:8000/health),
/to-metadata (302 → http://169.254.169.254/latest/meta-data/), /go?to=URL (302 → URL), /_web/stats (hits per path).
"""

from __future__ import annotations

import argparse
import asyncio
import html
from collections import Counter

from aiohttp import web

SLOW_S = 30.0

# slug: (title, [paragraphs]) — distinctive facts the tests look for.
ARTICLES: dict[str, tuple[str, list[str]]] = {
    "apollo-11": (
        "Apollo 11: the first crewed Moon landing",
        [
            "Apollo 11 was the American spaceflight that first landed humans on the Moon. Commander Neil "
            "Armstrong and lunar module pilot Buzz Aldrin landed the Apollo Lunar Module Eagle on 20 July 1969.",
            "Armstrong became the first person to step onto the lunar surface six hours and 39 minutes later; "
            "Aldrin joined him 19 minutes after that. They spent about two and a quarter hours together outside.",
            "Michael Collins flew the command module Columbia alone in lunar orbit while they were on the surface.",
        ],
    ),
    "python-language": (
        "Python (programming language)",
        [
            "Python is a high-level, general-purpose programming language. Its design philosophy emphasizes "
            "code readability with the use of significant indentation. Guido van Rossum began working on "
            "Python in the late 1980s as a successor to the ABC programming language.",
            "Python 3.0, released in 2008, was a major revision not completely backward-compatible with "
            "earlier versions. Python 2.7 reached end of life in 2020.",
        ],
    ),
    "rust-language": (
        "Rust (programming language)",
        [
            "Rust is a general-purpose programming language emphasizing performance, type safety and "
            "concurrency. It enforces memory safety without a garbage collector, using a borrow checker.",
            "Rust began as a personal project by Mozilla employee Graydon Hoare in 2006; Rust 1.0 was "
            "released in May 2015.",
        ],
    ),
    "coffee-health": (
        "Coffee and health: what the research says",
        [
            "Moderate coffee consumption, about three to four cups a day, is associated with a lower risk of "
            "type 2 diabetes in large observational studies.",
            "Caffeine raises blood pressure for a short time; people with uncontrolled hypertension are often "
            "advised to limit it. Pregnant women are advised to keep caffeine under 200 mg a day.",
        ],
    ),
    "great-wall": (
        "Is the Great Wall of China visible from space?",
        [
            "A popular claim says the Great Wall of China is visible from the Moon with the naked eye. It is "
            "not: the wall is only a few metres wide, and astronauts have reported they could not see it from "
            "the Moon, and only with great difficulty, if at all, from low Earth orbit.",
            "Chinese astronaut Yang Liwei said in 2003 that he could not see the Great Wall from orbit.",
        ],
    ),
    "solar-power": (
        "Solar power in 2024",
        [
            "Solar photovoltaic capacity grew faster than any other electricity source in 2024. Module prices "
            "fell below 0.15 US dollars per watt.",
            "Solar panels convert sunlight into electricity; their output falls at night and under clouds, so "
            "grids pair them with storage such as lithium-ion batteries.",
        ],
    ),
    "wind-power": (
        "Wind power basics",
        [
            "Wind turbines convert the kinetic energy of moving air into electricity. Offshore wind farms have "
            "steadier, stronger winds than onshore sites.",
            "Wind capacity factors are typically 25 to 45 percent, higher than those of solar photovoltaics.",
        ],
    ),
}

BOILERPLATE_HEAD = """<header class="site-header"><a href="/">Fixture News</a>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/tech">Tech</a></li>
<li><a href="/subscribe">Subscribe</a></li></ul></nav></header>
<div class="cookie-banner">We use cookies to improve your experience. <button>Accept all cookies</button></div>"""
BOILERPLATE_SIDE = """<aside class="sidebar"><h3>Most read</h3><ul><li><a href="/x">Ten tricks celebrities use</a></li>
<li><a href="/y">You won't believe this one weird gadget</a></li></ul><div class="ad">ADVERTISEMENT</div></aside>"""
BOILERPLATE_FOOT = """<footer><p>Copyright 2024 Fixture News Ltd. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a> |
<a href="/cookies">Cookie settings</a></p>
</footer>"""

BOILERPLATE_MARKERS = ("Accept all cookies", "Ten tricks celebrities use", "All rights reserved", "ADVERTISEMENT")


def article_html(slug: str) -> str:
    title, paras = ARTICLES[slug]
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paras)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Fixture News</title>
<meta name="author" content="Fixture Staff"><meta name="description" content="{html.escape(paras[0][:150])}">
<meta property="article:published_time" content="2024-05-17T09:00:00Z"></head>
<body>{BOILERPLATE_HEAD}
<main><article><h1>{html.escape(title)}</h1><p class="byline">By Fixture Staff, 17 May 2024</p>
{body}
</article></main>
{BOILERPLATE_SIDE}
{BOILERPLATE_FOOT}
<script>window.tracking = {{"id": 42}};</script>
</body></html>"""


class ResearchWeb:
    def __init__(self, slow_s: float = SLOW_S) -> None:
        self.slow_s = slow_s
        self.hits: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_get("/articles/{slug}.html", self.article)
        app.router.add_get("/redirect/{slug}", self.redirect)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/broken", self.broken)
        app.router.add_get("/file.pdf", self.pdf)
        app.router.add_get("/huge.html", self.huge)
        app.router.add_get("/to-loopback", self.to_loopback)
        app.router.add_get("/to-metadata", self.to_metadata)
        app.router.add_get("/go", self.go)
        app.router.add_get("/_web/stats", self.stats)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler):
        if request.path != "/_web/stats":
            self.hits[request.path] += 1
        return await handler(request)

    async def article(self, request: web.Request) -> web.Response:
        slug = request.match_info["slug"]
        if slug not in ARTICLES:
            raise web.HTTPNotFound()
        return web.Response(text=article_html(slug), content_type="text/html", charset="utf-8")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/articles/{request.match_info['slug']}.html")

    async def slow(self, _: web.Request) -> web.Response:
        await asyncio.sleep(self.slow_s)
        return web.Response(text=article_html("wind-power"), content_type="text/html")

    async def broken(self, _: web.Request) -> web.Response:
        return web.Response(status=500, text="<h1>Internal Server Error</h1>", content_type="text/html")

    async def pdf(self, _: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", content_type="application/pdf")

    async def huge(self, _: web.Request) -> web.Response:
        para = "<p>" + "Filler text about nothing in particular. " * 50 + "</p>\n"
        return web.Response(
            text="<html><body><article>" + para * 2000 + "</article></body></html>", content_type="text/html"
        )

    async def to_loopback(self, _: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:8000/health")

    async def to_metadata(self, _: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def go(self, request: web.Request) -> web.Response:
        """302 to `?to=` (any URL): redirect chains in the SSRF tests."""
        raise web.HTTPFound(request.query.get("to", "/"))

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"hits": dict(self.hits)})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        real_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://{host}:{real_port}"
        return self.base

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _serve(host: str, port: int, slow_s: float) -> None:
    site = ResearchWeb(slow_s)
    print(await site.start(host, port), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.3")
    p.add_argument("--port", type=int, default=18631)
    p.add_argument("--slow-s", type=float, default=SLOW_S)
    args = p.parse_args()
    asyncio.run(_serve(args.host, args.port, args.slow_s))


if __name__ == "__main__":
    main()
