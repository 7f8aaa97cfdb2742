"""A small fixture "web" for research-service tests: realistic HTML articles (navigation,
cookie banners, sidebars with "Related" links, comments, footers around the main text;
`article_html` renders one without a server, `article_boilerplate` lists the furniture
extraction must drop), plus the awkward cases —
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

# slug: (title, [paragraphs]) — distinctive facts the tests look for. The fake SearXNG
# (tests/fakes/fake_searxng.py) searches these; the tests rely on which article ranks first
# for their queries, so a new article should not share many words with the existing ones.
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
            "The reference implementation, CPython, is written in C and maintained by the Python Software "
            "Foundation, a non-profit organisation founded in 2001.",
        ],
    ),
    "rust-language": (
        "Rust (programming language)",
        [
            "Rust is a general-purpose programming language emphasizing performance, type safety and "
            "concurrency. It enforces memory safety without a garbage collector, using a borrow checker.",
            "Rust began as a personal project by Mozilla employee Graydon Hoare in 2006; Rust 1.0 was "
            "released in May 2015.",
            "Cargo is the official build system and package manager for Rust, and third-party packages, "
            "called crates, are published on the crates.io registry.",
        ],
    ),
    "coffee-health": (
        "Coffee and health: what the research says",
        [
            "Moderate coffee consumption, about three to four cups a day, is associated with a lower risk of "
            "type 2 diabetes in large observational studies.",
            "Caffeine raises blood pressure for a short time; people with uncontrolled hypertension are often "
            "advised to limit it. Pregnant women are advised to keep caffeine under 200 mg a day.",
            "The caffeine in a typical cup of brewed coffee ranges from about 80 to 100 milligrams, and its "
            "effects usually peak within an hour of drinking it.",
        ],
    ),
    "great-wall": (
        "Is the Great Wall of China visible from space?",
        [
            "A popular claim says the Great Wall of China is visible from the Moon with the naked eye. It is "
            "not: the wall is only a few metres wide, and astronauts have reported they could not see it from "
            "the Moon, and only with great difficulty, if at all, from low Earth orbit.",
            "Chinese astronaut Yang Liwei said in 2003 that he could not see the Great Wall from orbit.",
            "Most of the surviving wall was built during the Ming dynasty, between the fourteenth and "
            "seventeenth centuries, largely from brick and stone.",
        ],
    ),
    "solar-power": (
        "Solar power in 2024",
        [
            "Solar photovoltaic capacity grew faster than any other electricity source in 2024. Module prices "
            "fell below 0.15 US dollars per watt.",
            "Solar panels convert sunlight into electricity; their output falls at night and under clouds, so "
            "grids pair them with storage such as lithium-ion batteries.",
            "Manufacturers in East Asia produced most of the world's modules, and utility-scale plants "
            "accounted for most of the new capacity.",
        ],
    ),
    "wind-power": (
        "Wind power basics",
        [
            "Wind turbines convert the kinetic energy of moving air into electricity. Offshore wind farms have "
            "steadier, stronger winds than onshore sites.",
            "Wind capacity factors are typically 25 to 45 percent, higher than those of solar photovoltaics.",
            "Modern offshore machines have rotor diameters above 200 metres, and a single one can rate 15 "
            "megawatts or more.",
        ],
    ),
    "photosynthesis": (
        "Photosynthesis",
        [
            "Photosynthesis is the process by which plants, algae and cyanobacteria convert light energy into "
            "chemical energy stored in sugars. It takes place mainly in the chloroplasts of leaf cells.",
            "The light-dependent reactions occur in the thylakoid membranes, where chlorophyll absorbs mostly "
            "blue and red light and water molecules are split, releasing oxygen as a by-product.",
            "In the Calvin cycle, which runs in the stroma, the enzyme RuBisCO fixes carbon dioxide into "
            "three-carbon compounds that the plant later assembles into glucose.",
            "Photosynthesis is believed to have raised the oxygen content of the atmosphere during the Great "
            "Oxidation Event roughly 2.4 billion years ago.",
        ],
    ),
    "dna-structure": (
        "The double helix structure of DNA",
        [
            "Deoxyribonucleic acid carries the genetic instructions of nearly all known organisms. Its two "
            "strands wind around each other in a right-handed double helix.",
            "James Watson and Francis Crick published their model of the double helix in the journal Nature "
            "in April 1953, drawing on X-ray diffraction images made by Rosalind Franklin and Raymond Gosling.",
            "Each strand is a chain of nucleotides; adenine pairs with thymine and guanine pairs with cytosine, "
            "held together by hydrogen bonds between the strands.",
        ],
    ),
    "black-holes": (
        "Black holes explained",
        [
            "A black hole is a region of spacetime where gravity is so strong that nothing, not even light, can "
            "escape once it crosses the boundary called the event horizon.",
            "Stellar-mass black holes form as very massive stars collapse at the end of their lives. "
            "Supermassive black holes with millions or billions of solar masses sit at the centres of most "
            "large galaxies.",
            "In April 2019 the Event Horizon Telescope collaboration published the first image of a black "
            "hole, the one at the centre of the galaxy Messier 87.",
        ],
    ),
    "plate-tectonics": (
        "Plate tectonics",
        [
            "Plate tectonics is the scientific theory that the lithosphere of the Earth is broken into large "
            "plates that move slowly over the weaker asthenosphere beneath them.",
            "Alfred Wegener proposed continental drift in 1912, but the idea was widely rejected until "
            "seafloor spreading was documented along mid-ocean ridges in the 1960s.",
            "Most earthquakes and volcanoes occur along plate boundaries, such as the Pacific Ring of Fire, "
            "where plates collide, pull apart or slide past one another.",
        ],
    ),
    "vaccines-history": (
        "A short history of vaccination",
        [
            "Edward Jenner demonstrated in 1796 that inoculation with cowpox material protected a boy named "
            "James Phipps against smallpox, laying the groundwork for vaccination.",
            "Louis Pasteur developed vaccines against chicken cholera and anthrax, and in 1885 used a rabies "
            "vaccine on a boy bitten by a rabid dog.",
            "The World Health Organization declared smallpox eradicated in 1980, the first human disease "
            "eliminated worldwide through a vaccination campaign.",
        ],
    ),
    "roman-empire": (
        "The fall of the Western Roman Empire",
        [
            "The Western Roman Empire is conventionally said to have ended in 476, when the Germanic leader "
            "Odoacer deposed the young emperor Romulus Augustulus.",
            "Historians cite many causes for the decline, including political instability, fiscal crises, "
            "pressure from migrating peoples and the division of the empire into eastern and western halves.",
            "The Eastern Roman Empire, often called the Byzantine Empire, survived with its capital at "
            "Constantinople until the city fell to the Ottomans in 1453.",
        ],
    ),
    "printing-press": (
        "Gutenberg and the printing press",
        [
            "Johannes Gutenberg, a goldsmith from Mainz, developed a movable-type printing press around 1440, "
            "combining metal type, oil-based ink and a screw press adapted from wine making.",
            "The Gutenberg Bible, printed in the 1450s, is the first major book produced in Europe with "
            "movable metal type; fewer than fifty copies survive.",
            "By 1500 presses were operating in more than two hundred European towns, and the spread of cheap "
            "books helped fuel the Reformation and the Scientific Revolution.",
        ],
    ),
    "french-revolution": (
        "The French Revolution",
        [
            "The French Revolution began in 1789 amid a financial crisis, when the Estates-General was "
            "summoned for the first time since 1614.",
            "On 14 July 1789 crowds in Paris stormed the Bastille, a fortress and prison that had become a "
            "symbol of royal authority.",
            "King Louis XVI was executed by guillotine in January 1793, and the Reign of Terror that followed "
            "saw thousands of suspected enemies of the revolution put to death.",
            "The revolutionary period is usually said to close in 1799, when Napoleon Bonaparte seized power "
            "in the coup of 18 Brumaire.",
        ],
    ),
    "magna-carta": (
        "Magna Carta",
        [
            "Magna Carta is a royal charter of rights agreed by King John of England at Runnymede, near "
            "Windsor, on 15 June 1215.",
            "It was drafted to make peace between the unpopular king and a group of rebel barons, and it "
            "promised the protection of church rights and limits on feudal payments to the Crown.",
            "Only three clauses remain part of English law today, including the one guaranteeing that no "
            "free man may be imprisoned except by the lawful judgement of his peers.",
        ],
    ),
    "javascript-language": (
        "JavaScript",
        [
            "JavaScript is a programming language that is one of the core technologies of the web, alongside "
            "HTML and CSS. Nearly every website uses it for client-side behaviour.",
            "Brendan Eich created the first version in just ten days in May 1995 while working at Netscape "
            "Communications.",
            "The language is standardised as ECMAScript by Ecma International; the 2015 edition, known as "
            "ES6, added classes, modules, arrow functions and promises.",
        ],
    ),
    "git-vcs": (
        "Git version control",
        [
            "Git is a distributed version control system that tracks changes in source code. Every clone is "
            "a full repository with complete history.",
            "Linus Torvalds started Git in April 2005 for the development of the Linux kernel, after the "
            "free licence for BitKeeper was withdrawn.",
            "Git stores snapshots of a project as content-addressed objects named by their SHA-1 hash, and "
            "branches are lightweight movable pointers to commits.",
        ],
    ),
    "sql-databases": (
        "SQL and relational databases",
        [
            "SQL is a domain-specific language used to manage data held in relational database management "
            "systems, such as PostgreSQL, MySQL and SQLite.",
            "Edgar F. Codd described the relational model in a 1970 paper while working at IBM, and the "
            "SEQUEL language was designed at IBM by Donald Chamberlin and Raymond Boyce in the early 1970s.",
            "SQL became a standard of the American National Standards Institute in 1986 and of the "
            "International Organization for Standardization in 1987.",
        ],
    ),
    "linux-kernel": (
        "The Linux kernel",
        [
            "The Linux kernel is a free and open-source, Unix-like operating system kernel. It was first "
            "announced by the Finnish student Linus Torvalds on the Usenet group comp.os.minix in August 1991.",
            "The kernel is licensed under the GNU General Public License version 2 and is developed by "
            "thousands of contributors from companies and volunteer communities.",
            "Linux runs on all of the world's five hundred fastest supercomputers and forms the basis of the "
            "Android mobile operating system.",
        ],
    ),
    "amazon-river": (
        "The Amazon River",
        [
            "The Amazon River in South America is the largest river in the world by discharge volume, "
            "carrying roughly a fifth of all the freshwater that flows into the oceans.",
            "It rises in the Andes mountains of Peru and flows east across Brazil to the Atlantic Ocean; its "
            "length is usually given as about 6,400 kilometres.",
            "The Amazon basin covers some seven million square kilometres and holds the largest tropical "
            "rainforest on Earth.",
        ],
    ),
    "mount-everest": (
        "Mount Everest",
        [
            "Mount Everest is Earth's highest mountain above sea level, at 8,849 metres according to the 2020 "
            "survey carried out jointly by Nepal and China.",
            "It lies in the Mahalangur Himal sub-range of the Himalayas, on the border between Nepal and the "
            "Tibet Autonomous Region.",
            "Edmund Hillary of New Zealand and the Sherpa mountaineer Tenzing Norgay made the first confirmed "
            "ascent of the summit on 29 May 1953.",
        ],
    ),
    "sahara-desert": (
        "The Sahara",
        [
            "The Sahara is the largest hot desert in the world, covering about nine million square kilometres "
            "of North Africa from the Atlantic coast to the Red Sea.",
            "Only a small part of it is sand dunes, known as ergs; much of the rest is stony plateau called "
            "hamada and gravel plain called reg.",
            "Between about 11,000 and 5,000 years ago, during the African Humid Period, the Sahara was much "
            "wetter and supported lakes, grasslands and hippopotamuses.",
        ],
    ),
    "iceland-geography": (
        "Geography of Iceland",
        [
            "Iceland is a Nordic island country in the North Atlantic Ocean that sits astride the "
            "Mid-Atlantic Ridge, the boundary between the North American and Eurasian plates.",
            "Glaciers cover roughly eleven percent of the island; Vatnajokull is the largest ice cap in Europe "
            "by volume.",
            "Geothermal energy heats about nine out of ten homes in Iceland, and hydropower supplies most of "
            "the country's electricity.",
        ],
    ),
    "football-world-cup": (
        "The FIFA World Cup",
        [
            "The FIFA World Cup is an international association football tournament contested by the men's "
            "national teams of FIFA member associations every four years.",
            "The first tournament was held in Uruguay in 1930, and the host nation beat Argentina 4-2 in the "
            "final in Montevideo.",
            "Brazil has won the tournament a record five times, in 1958, 1962, 1970, 1994 and 2002.",
        ],
    ),
    "olympic-games": (
        "The modern Olympic Games",
        [
            "The modern Olympic Games were founded through the efforts of the French educator Pierre de "
            "Coubertin, who set up the International Olympic Committee in 1894.",
            "The first modern Games took place in Athens in April 1896, with athletes from fourteen nations "
            "competing in forty-three events.",
            "The Winter Olympics were introduced in 1924 at Chamonix, France, and since 1994 the Summer and "
            "Winter Games have been held two years apart.",
        ],
    ),
    "marathon-running": (
        "The marathon",
        [
            "The marathon is a long-distance foot race over 42.195 kilometres, a distance fixed by the "
            "International Amateur Athletic Federation in 1921.",
            "The race commemorates the legend of the Greek messenger Pheidippides, said to have run from the "
            "battlefield of Marathon to Athens.",
            "Kelvin Kiptum of Kenya set a men's world record of 2:00:35 at the Chicago Marathon in October 2023.",
        ],
    ),
    "sourdough-bread": (
        "Baking sourdough bread",
        [
            "Sourdough bread is leavened by a starter, a fermenting mixture of flour and water that hosts wild "
            "yeasts and lactic acid bacteria.",
            "The bacteria produce lactic and acetic acids, which give sourdough its tangy flavour and help the "
            "loaf keep longer than bread made with commercial yeast.",
            "A typical recipe calls for a long cold fermentation of twelve to eighteen hours in the "
            "refrigerator, which develops flavour and makes the dough easier to shape.",
        ],
    ),
    "maillard-reaction": (
        "The Maillard reaction in cooking",
        [
            "The Maillard reaction is a chemical reaction between amino acids and reducing sugars that gives "
            "browned food its distinctive flavour and colour.",
            "It is named after the French chemist Louis Camille Maillard, who described it in 1912.",
            "The reaction proceeds rapidly from around 140 to 165 degrees Celsius, which is why searing "
            "steak, toasting bread and roasting coffee beans produce such rich aromas.",
        ],
    ),
    "italian-pasta": (
        "Pasta in Italian cuisine",
        [
            "Pasta is a staple of Italian cuisine made from an unleavened dough of durum wheat semolina mixed "
            "with water or eggs.",
            "Italian law requires dried pasta sold in Italy to be made only from durum wheat semolina and water.",
            "Cooking pasta al dente, literally to the tooth, leaves it slightly firm in the centre; cooks often "
            "add a ladle of the starchy cooking water to bind the sauce.",
        ],
    ),
    "beethoven": (
        "Ludwig van Beethoven",
        [
            "Ludwig van Beethoven was a German composer and pianist, born in Bonn in December 1770, whose work "
            "bridges the Classical and Romantic eras.",
            "He began to lose his hearing in his late twenties and was almost completely deaf by the last "
            "decade of his life, yet he continued to compose.",
            "His Ninth Symphony, first performed in Vienna in May 1824, ends with a choral setting of "
            "Friedrich Schiller's poem Ode to Joy.",
        ],
    ),
    "jazz-origins": (
        "The origins of jazz",
        [
            "Jazz originated in the African-American communities of New Orleans in the late nineteenth and "
            "early twentieth centuries, drawing on blues and ragtime.",
            "The Original Dixieland Jass Band made what is generally considered the first jazz recording in "
            "1917 for the Victor Talking Machine Company.",
            "Trumpeter Louis Armstrong's Hot Five and Hot Seven recordings of the 1920s made the improvised "
            "solo central to the music.",
        ],
    ),
    "electric-guitar": (
        "The electric guitar",
        [
            "An electric guitar uses magnetic pickups to convert the vibration of its steel strings into an "
            "electrical signal that is sent to an amplifier.",
            "Leo Fender's Broadcaster, soon renamed the Telecaster, was the first mass-produced solid-body "
            "electric guitar, introduced in 1950.",
            "Gibson introduced the Les Paul model in 1952, named after the guitarist and inventor who had "
            "experimented with solid-body designs in the 1940s.",
        ],
    ),
}

BOILERPLATE_HEAD = """<header class="site-header"><a href="/">Fixture News</a>
<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/tech">Tech</a></li>
<li><a href="/subscribe">Subscribe</a></li></ul></nav></header>
<div class="cookie-banner">We use cookies to improve your experience. <button>Accept all cookies</button></div>"""
BOILERPLATE_SIDE = """<aside class="sidebar"><h3>Most read</h3><ul><li><a href="/x">Ten tricks celebrities use</a></li>
<li><a href="/y">You won't believe this one weird gadget</a></li></ul>
<h3>Related</h3><ul class="related">{related}</ul><div class="ad">ADVERTISEMENT</div></aside>"""
BOILERPLATE_FOOT = """<footer><p>Copyright 2024 Fixture News Ltd. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a> |
<a href="/cookies">Cookie settings</a></p>
</footer>"""

BOILERPLATE_COMMENTS = """<section id="comments" class="comments"><h2>3 comments</h2>
<div class="comment"><p class="comment-meta">quietreader42 · 2 hours ago</p>
<p>Interesting read, though I expected more detail. Bookmarking this for later anyway.</p></div>
<div class="comment"><p class="comment-meta">FixtureFan · 5 hours ago</p>
<p>Does anyone know whether the print edition carries the full version of this piece?</p></div>
<div class="comment"><p class="comment-meta">n0name · yesterday</p><p>First!</p></div>
<form class="comment-form"><textarea placeholder="Join the discussion"></textarea><button>Post comment</button></form>
</section>"""

BOILERPLATE_MARKERS = (
    "Accept all cookies",
    "We use cookies to improve your experience",
    "Ten tricks celebrities use",
    "You won't believe this one weird gadget",
    "All rights reserved",
    "Privacy policy",
    "Terms of use",
    "ADVERTISEMENT",
    "Subscribe",
    "Interesting read, though I expected more detail",
    "Does anyone know whether the print edition",
    "quietreader42",
    "Join the discussion",
)
N_RELATED = 3


def related_slugs(slug: str) -> list[str]:
    """The other articles a page's sidebar links to under "Related" (the next ones in ARTICLES)."""
    slugs = list(ARTICLES)
    i = slugs.index(slug)
    return [slugs[(i + k) % len(slugs)] for k in range(1, N_RELATED + 1)]


def article_boilerplate(slug: str) -> list[str]:
    """Every piece of page furniture around `slug`'s text (banner, navigation, sidebar with its
    "Related" links, comments, footer) that extraction must drop — those that also occur in the
    article's own title or text are left out, since keeping them is right."""
    title, paras = ARTICLES[slug]
    own = " ".join([title, *paras])
    related = [ARTICLES[s][0] for s in related_slugs(slug)]
    return [m for m in (*BOILERPLATE_MARKERS, *related) if m not in own]


def article_html(slug: str) -> str:
    """The page at /articles/<slug>.html (no server needed: the extraction tests call this)."""
    title, paras = ARTICLES[slug]
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paras)
    related = "".join(
        f'<li><a href="/articles/{s}.html">{html.escape(ARTICLES[s][0])}</a></li>' for s in related_slugs(slug)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Fixture News</title>
<meta name="author" content="Fixture Staff"><meta name="description" content="{html.escape(paras[0][:150])}">
<meta property="article:published_time" content="2024-05-17T09:00:00Z"></head>
<body>{BOILERPLATE_HEAD}
<main><article><h1>{html.escape(title)}</h1><p class="byline">By Fixture Staff, 17 May 2024</p>
{body}
</article>
{BOILERPLATE_COMMENTS}</main>
{BOILERPLATE_SIDE.format(related=related)}
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
