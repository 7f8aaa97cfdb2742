"""The knowledge base's parts without a database: chunking (headings, sentences, overlap),
extraction (kinds, limits, names), the sources' URLs and the local roots."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from research_service.knowledge.catalogue import SOURCES, web_targets
from research_service.knowledge.chunking import Section, chunk_sections, markdown_sections
from research_service.knowledge.extract import ExtractError, Limits, clean_filename, extract, kind_of
from research_service.knowledge.local import confined, list_files

from .kb_files import make_docx, make_pdf, zip_bomb_docx

LIMITS = Limits(max_bytes=1_000_000, max_pdf_pages=5, max_docx_unpacked_bytes=2_000_000)


def test_markdown_sections_follow_the_heading_path() -> None:
    md = "intro line\n# A\ntext a\n## B\ntext b\n```\n# not a heading\n```\n### C\ntext c\n## D\ntext d\n"
    got = [(s.location, s.text.splitlines()[0], s.heading) for s in markdown_sections(md)]
    assert got == [("", "intro line", False), ("A", "text a", True), ("A > B", "text b", True),
                   ("A > B > C", "text c", True), ("A > D", "text d", True)]  # fmt: skip
    assert "# not a heading" in markdown_sections(md)[2].text


def test_chunks_respect_sections_sentences_and_overlap() -> None:
    sentences = [f"Sentence number {i} says something about topic {i} in plain words." for i in range(60)]
    sections = [Section("Guide > Install", " ".join(sentences), heading=True), Section("Guide > Use", "Short.", True)]
    pieces = chunk_sections(sections, model="m")
    body = [p for p in pieces if p.location == "Guide > Install"]
    assert len(body) >= 3 and all(len(p.text) <= 1000 for p in pieces)
    assert all(p.text.endswith(".") for p in body)  # cut between sentences
    for a, b in pairwise(body):  # the next starts with the last sentences of the previous
        assert b.text.splitlines()[0] in a.text
    assert pieces[-1].location == "Guide > Use" and pieces[-1].text == "Short."
    assert pieces[-1].embed_text == "Guide > Use\nShort."
    # A chunk's hash is of what was embedded and by which model.
    assert chunk_sections(sections, model="m")[0].content_hash == pieces[0].content_hash
    assert chunk_sections(sections, model="other")[0].content_hash != pieces[0].content_hash
    long_word = "x" * 2500
    assert [len(p.text) for p in chunk_sections([Section("", long_word)])] == [1000, 1000, 500]


def test_kinds_and_names() -> None:
    assert kind_of("a.PDF", b"%PDF-1.7 ...") == "pdf"
    assert kind_of("noext", b"%PDF-1.4") == "pdf" and kind_of("noext", b"<!DOCTYPE html><p>x") == "html"
    assert kind_of("notes", b"plain words") == "text" and kind_of("r.md", b"# x") == "markdown"
    for name, data, status in [("a.pdf", b"nope", 422), ("a.docx", b"nope", 422), ("a.bin", b"\x00\x01", 415),
                               ("a.txt", b"a\x00b", 415)]:  # fmt: skip
        with pytest.raises(ExtractError) as err:
            kind_of(name, data)
        assert err.value.status == status
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\temp\\..\\x.md") == "x.md"
    assert clean_filename("..") == "document" and clean_filename("") == "document"
    assert clean_filename("bell\x07.txt") == "bell.txt" and clean_filename(".env") == "env"
    assert len(clean_filename("a" * 500 + ".md")) == 200 and clean_filename("a" * 500 + ".md").endswith(".md")


def test_extraction_of_each_kind() -> None:
    title, sections = extract("pdf", make_pdf([["one", "two-"], ["three"]]), "f.pdf", LIMITS)
    assert title == "f.pdf" and [s.location for s in sections] == ["page 1", "page 2"]
    _, sections = extract("docx", make_docx([("h1", "Top"), ("p", "body text")]), "f.docx", LIMITS)
    assert [(s.location, s.text) for s in sections] == [("Top", "body text")]
    html = "<html><head><title>T</title></head><body><article><h1>Head</h1><p>" + "Para words. " * 30
    title, sections = extract("html", (html + "</p></article></body></html>").encode(), "f.html", LIMITS)
    assert title == "Head" and sections and "Para words." in sections[0].text  # the page's own heading
    _, sections = extract("text", "caf\xe9".encode("cp1252"), "f.txt", LIMITS)  # not UTF-8: still read
    assert sections[0].text == "café"
    with pytest.raises(ExtractError) as err:
        extract("docx", zip_bomb_docx(3 << 20), "bomb.docx", LIMITS)
    assert err.value.status == 413 and "unpacks to" in err.value.message
    with pytest.raises(ExtractError) as err:
        extract("pdf", make_pdf([["p"]] * 6), "long.pdf", LIMITS)
    assert err.value.status == 413 and "6 pages" in err.value.message


def test_web_targets() -> None:
    params = {"python_libraries": ["asyncio", "os.path"], "keywords": ["sql injection"]}
    urls = web_targets(SOURCES["python_docs"], params, ["https://example.org/x"], 10)
    assert urls[-3:] == ["https://docs.python.org/3/library/asyncio.html",
                         "https://docs.python.org/3/library/os.path.html", "https://example.org/x"]  # fmt: skip
    assert web_targets(SOURCES["nvd_nist"], params, [], 10) == [
        "https://nvd.nist.gov/vuln/search/results?form_type=Basic&query=sql+injection"
    ]
    assert web_targets(SOURCES["stack_overflow"], {}, [], 10) == []
    assert len(web_targets(SOURCES["github"], {"keywords": [f"k{i}" for i in range(30)]}, [], 5)) == 5


def test_local_files_stay_under_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    (root / "big.txt").write_text("x" * 50)
    (root / "skip.bin").write_text("x")
    (root / "out.md").symlink_to("/etc/hostname")
    (root / "loop").symlink_to(root)
    roots = [str(root)]
    files, skipped = list_files(roots, roots, (".md", ".txt"), max_bytes=20)
    assert [Path(f).name for f in files] == ["a.md", "b.txt"]
    assert any("links outside" in s for s in skipped) and any("larger than" in s for s in skipped)
    assert confined("/etc/passwd", roots) is None and confined(f"{root}/../..", roots) is None
    assert confined(f"{root}/sub/../a.md", roots) == str(root / "a.md")
    assert list_files(["/etc"], roots, (".md",), 20)[0] == []


def test_embedding_engines_agree() -> None:
    """ONNX Runtime (installed here) and numpy run the same layers: the same vectors."""
    import numpy as np

    from harvis_common.embeddings import MiniLMEmbedder

    fast, plain = MiniLMEmbedder.load(), MiniLMEmbedder.load(engine="numpy")
    assert (fast.engine, plain.engine) == ("onnx", "numpy")
    texts = ["short", "This is an example sentence", "a longer one about backups, " * 40, ""]
    a, b = fast.encode(texts, batch_size=2), plain.encode(texts)
    assert a.shape == (4, 384) and np.abs(a - b).max() < 1e-5
    assert np.abs(a[1][:4] - np.array([0.0676569, 0.0634959, 0.0487132, 0.079305])).max() < 1e-5
