"""A FAKE SearXNG instance for tests: SearXNG's real JSON API (`GET /search?q=…&format=json`,
403 when another format is asked for, as an instance without it enabled answers), its
result shape (`url`, `title`, `content`, `engine`, `engines`, `score`, `parsed_url`, …),
with results pointing at the fixture web (tests/e2e/sites/research_web.py). It is not a
search engine: it matches the query's words against the fixture articles.

Real SearXNG can't be installed here; research-service's SearXNG provider is what the
end-to-end tests search through. Queries containing these words steer it:

    hostile     results at 127.0.0.1:8000, 169.254.169.254 and a redirect to loopback (+ one article)
    awkward     results at the slow, broken, PDF and oversize pages (+ one article)
    zzznothing  no results
    benchten    ten pages, the first one slow (bench/research.py)
    [[fail]]    HTTP 500 (a broken instance)

`GET /_fake/stats` (not SearXNG's: the fake's own test hook) counts searches per query.

    python tests/fakes/fake_searxng.py --port 18632 --web http://127.0.0.3:18631
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "sites"))
from research_web import ARTICLES

_WORD = re.compile(r"\w+")
_STOP = {"the", "a", "an", "of", "is", "what", "and", "or", "in", "on", "to", "from", "who", "how", "was", "vs"}


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _result(url: str, title: str, content: str, score: float, position: int) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "url": url,
        "title": title,
        "content": content,
        "engine": "duckduckgo",
        "parsed_url": [parts.scheme, parts.netloc, parts.path, "", parts.query, parts.fragment],
        "template": "default.html",
        "engines": ["duckduckgo", "brave"],
        "positions": [position],
        "publishedDate": None,
        "thumbnail": "",
        "score": score,
        "category": "general",
    }


class FakeSearXNG:
    def __init__(self, web_base: str) -> None:
        self.web_base = web_base.rstrip("/")
        self.searches: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/search", self.search)
        app.router.add_post("/search", self.search)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/_fake/stats", self.stats)
        return app

    def results_for(self, q: str) -> list[dict[str, Any]]:
        low = q.lower()
        w = self.web_base
        if "zzznothing" in low:
            return []
        if "hostile" in low:
            title, paras = ARTICLES["apollo-11"]
            return [
                _result("http://127.0.0.1:8000/health", "Loopback service", "internal", 3.0, 1),
                _result("http://169.254.169.254/latest/meta-data/", "Cloud metadata", "secrets", 2.5, 2),
                _result(f"{w}/to-loopback", "A page that redirects to loopback", "redirect", 2.0, 3),
                _result(f"{w}/to-metadata", "A page that redirects to metadata", "redirect", 1.8, 4),
                _result(f"{w}/articles/apollo-11.html", title, paras[0][:160], 1.0, 5),
            ]
        if "benchten" in low:  # bench/research.py: ten pages, one of them slow
            out = [_result(f"{w}/slow", "A very slow page", "slow", 10.0, 1)]
            for i in range(9):
                slug = list(ARTICLES)[i % len(ARTICLES)]
                title, paras = ARTICLES[slug]
                out.append(_result(f"{w}/articles/{slug}.html?copy={i}", title, paras[0][:160], 9.0 - i, i + 2))
            return out
        if "awkward" in low:
            title, paras = ARTICLES["wind-power"]
            return [
                _result(f"{w}/slow", "A very slow page", "slow", 3.0, 1),
                _result(f"{w}/broken", "A broken page", "broken", 2.5, 2),
                _result(f"{w}/file.pdf", "A PDF report", "pdf", 2.0, 3),
                _result(f"{w}/articles/wind-power.html", title, paras[0][:160], 1.0, 4),
            ]
        words = _words(q)
        scored = []
        for slug, (title, paras) in ARTICLES.items():
            hits = len(words & _words(title + " " + " ".join(paras)))
            if hits:
                scored.append((hits, slug))
        scored.sort(key=lambda x: (-x[0], x[1]))
        out = []
        for i, (hits, slug) in enumerate(scored, 1):
            title, paras = ARTICLES[slug]
            # Every other result goes through a redirect; the first also comes back as a
            # tracking-parameter duplicate (deduplication).
            path = f"/redirect/{slug}" if i % 2 == 0 else f"/articles/{slug}.html"
            out.append(_result(w + path, title, paras[0][:160], float(hits), i))
            if i == 1:
                out.append(_result(f"{w}/articles/{slug}.html?utm_source=fake", title, paras[0][:160], hits - 0.5, i))
        return out

    async def search(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update(dict(await request.post()))
        q = str(params.get("q", ""))
        if params.get("format") != "json":
            return web.Response(status=403, text="403 Forbidden")
        self.searches[q] += 1
        if "[[fail]]" in q:
            return web.Response(status=500, text="Internal Server Error")
        results = self.results_for(q)
        return web.json_response(
            {
                "query": q,
                "number_of_results": len(results),
                "results": results,
                "answers": [],
                "corrections": [],
                "infoboxes": [],
                "suggestions": [],
                "unresponsive_engines": [],
            }
        )

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"searches": dict(self.searches), "total": sum(self.searches.values())})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        return f"http://{host}:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _serve(host: str, port: int, web_base: str) -> None:
    fake = FakeSearXNG(web_base)
    print(await fake.start(host, port), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18632)
    p.add_argument("--web", required=True, help="base URL of the fixture web")
    args = p.parse_args()
    asyncio.run(_serve(args.host, args.port, args.web))


if __name__ == "__main__":
    main()
