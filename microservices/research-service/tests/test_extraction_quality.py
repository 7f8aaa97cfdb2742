"""Extraction quality on the fixture web (tests/e2e/sites/research_web.py), without a server:
for every article, research-service's extractor (`research_service.fetch.extract`,
trafilatura) keeps every sentence of the article's text and drops all the page furniture
around it — cookie banner, navigation, sidebar ("Most read", "Related" links, the ad),
comments and footer."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from research_service.fetch import extract

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "e2e" / "sites"))
from research_web import ARTICLES, article_boilerplate, article_html

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if s]


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def extracted() -> dict[str, dict]:
    return {slug: extract(article_html(slug), f"http://127.0.0.3/articles/{slug}.html") for slug in ARTICLES}


def test_the_fixture_web_is_big_enough() -> None:
    assert len(ARTICLES) >= 30
    assert all(3 <= len(paras) <= 5 for _, paras in ARTICLES.values())


@pytest.mark.parametrize("slug", list(ARTICLES))
def test_keeps_the_whole_article_text(slug: str, extracted: dict[str, dict]) -> None:
    title, paras = ARTICLES[slug]
    data = extracted[slug]
    assert data.get("content"), f"{slug}: the extractor found no main text"
    content = _squash(data["content"])
    missing = [(i, s) for i, p in enumerate(paras, 1) for s in sentences(p) if _squash(s) not in content]
    assert not missing, (
        f"{slug}: {len(missing)} sentence(s) lost in extraction: "
        + "; ".join(f"paragraph {i}: {s!r}" for i, s in missing)
        + f"\n--- extracted text ---\n{data['content']}"
    )
    starts = [content.find(_squash(sentences(p)[0])) for p in paras]
    assert starts == sorted(starts), f"{slug}: paragraphs out of order in the extracted text (offsets {starts})"
    assert data["title"].startswith(title.split(":")[0]), f"{slug}: title {data['title']!r}, expected {title!r}"


@pytest.mark.parametrize("slug", list(ARTICLES))
def test_drops_the_page_furniture(slug: str, extracted: dict[str, dict]) -> None:
    content = extracted[slug].get("content", "")
    kept = [m for m in article_boilerplate(slug) if m in content]
    assert not kept, f"{slug}: boilerplate kept in the extracted text: {kept!r}\n--- extracted text ---\n{content}"


@pytest.mark.parametrize("slug", list(ARTICLES))
def test_metadata(slug: str, extracted: dict[str, dict]) -> None:
    data = extracted[slug]
    assert data.get("date", "") and data["date"].startswith("2024-05-17"), f"{slug}: date {data.get('date')!r}"
    assert data.get("author") == "Fixture Staff", f"{slug}: author {data.get('author')!r}"
