"""Artifact specs and renderers, without a database: every type's minimal spec is accepted and
makes a file its consumer opens (real formulas, heading styles, tables, one slide per item,
extractable PDF text); hostile specs break a named limit."""

from __future__ import annotations

import base64
import io
import time
import zipfile
from typing import Any

import pytest
from artifact_support import CODE, DOCUMENT, PRESENTATION, SPECS, docx_paragraphs, pdf_text, png, pptx_slides, xlsx_rows
from pydantic import ValidationError

from core_api.artifacts import specs
from core_api.artifacts.convention import find_block, system_prompt
from core_api.artifacts.render import MIME, render
from core_api.artifacts.specs import ArtifactCreate


def make(artifact_type: str, spec: dict[str, Any], title: str = "T") -> bytes:
    req = ArtifactCreate(type=artifact_type, title=title, spec=spec)
    out = render(req.type, req.title, req.stored_spec())
    assert out.mime_type == MIME[artifact_type]
    return out.data


def test_spreadsheet_has_the_data_and_a_real_formula() -> None:
    rows, ws = xlsx_rows(make("spreadsheet", SPECS["spreadsheet"]), "Sales")
    assert rows == [["a", 1, 2.5], ["b", 3, "=B1+B2"]]
    assert ws["C2"].data_type == "f"  # a formula, not text


def test_spreadsheet_header_names_and_many_sheets() -> None:
    spec = {
        "sheets": [
            {"name": "Q1/Q2", "header": True, "rows": [["Item", "Qty"], ["x", 2]], "column_widths": [20, 8]},
            {"name": "q1 q2", "rows": [[None, True, -1.5]]},
        ]
    }
    data = make("spreadsheet", spec)
    rows, ws = xlsx_rows(data, "Q1 Q2")  # "/" is not allowed in a sheet name
    assert rows == [["Item", "Qty"], ["x", 2]] and ws["A1"].font.b and ws.freeze_panes == "A2"
    import openpyxl

    names = openpyxl.load_workbook(io.BytesIO(data)).sheetnames
    assert len(names) == 2 and len({n.lower() for n in names}) == 2  # Excel refuses twins


def test_document_has_heading_styles_lists_and_a_table() -> None:
    paragraphs, tables = docx_paragraphs(make("document", DOCUMENT))
    assert ("Heading 1", "Quarterly report") in paragraphs
    assert ("Normal", "Revenue grew & costs < plan.") in paragraphs
    assert ("List Bullet", "first point") in paragraphs and ("List Bullet 2", "nested point") in paragraphs
    assert len(tables) == 1 and [[c.text for c in r.cells] for r in tables[0].rows] == [["h1", "h2"], ["a", "b"]]


def test_ordered_lists_headings_and_page_breaks() -> None:
    spec = {
        "blocks": [
            {"type": "heading", "text": "Two", "level": 2},
            {"type": "list", "items": ["a", "b"], "ordered": True},
            {"type": "page_break"},
            {"type": "paragraph", "text": "after"},
        ]
    }
    paragraphs, _ = docx_paragraphs(make("document", spec))
    assert ("Heading 2", "Two") in paragraphs and ("List Number", "a") in paragraphs


def test_pdf_text_is_extractable() -> None:
    data = make("pdf", DOCUMENT, title="Report")
    text = pdf_text(data)
    for piece in ("Quarterly report", "Revenue grew & costs < plan.", "nested point", "h1", "b"):
        assert piece in text
    assert b"/Title (Report)" in data


def test_presentation_one_slide_per_item_with_images() -> None:
    assert pptx_slides(make("presentation", PRESENTATION)) == [("Intro", ["one", "two"]), ("End", ["bye"])]
    spec = {
        "slides": [
            {"title": "Pic", "image": png(), "notes": "say hi"},
            {"title": "Both", "bullets": ["x"], "image": "data:image/png;base64," + png(20, 60)},
        ]
    }
    import pptx

    prs = pptx.Presentation(io.BytesIO(make("presentation", spec)))
    assert len(prs.slides) == 2
    assert all(any(s.shape_type == 13 for s in slide.shapes) for slide in prs.slides)  # a picture each
    assert prs.slides[0].notes_slide.notes_text_frame.text == "say hi"


@pytest.mark.parametrize("artifact_type", ["code", "website", "app"])
def test_code_types_zip_their_files(artifact_type: str) -> None:
    with zipfile.ZipFile(io.BytesIO(make(artifact_type, CODE))) as zf:
        assert sorted(zf.namelist()) == ["App.tsx", "styles.css"]  # "/App.tsx" is the project's App.tsx
    stored = ArtifactCreate(type=artifact_type, title="x", spec=CODE).stored_spec()
    assert stored["entry_file"] == "App.tsx" and stored["dependencies"] == {"react": "^18.2.0"}


def test_a_thousand_rows_and_twenty_pages_are_quick() -> None:
    rows = [[f"n{i}", i, i * 1.5, f"=B{i + 1}*C{i + 1}"] for i in range(1000)]
    blocks: list[dict[str, Any]] = []
    for p in range(20):
        blocks.append({"type": "heading", "text": f"Section {p}", "level": 1})
        blocks += [{"type": "paragraph", "text": "Lorem ipsum dolor sit amet. " * 25}] * 5
        blocks.append({"type": "table", "rows": [["a", "b"], *[[str(i), "x"] for i in range(8)]]})
    for artifact_type, spec in (
        ("spreadsheet", {"sheets": [{"rows": rows}]}),
        ("document", {"blocks": blocks}),
        ("pdf", {"blocks": blocks}),
    ):
        start = time.perf_counter()
        make(artifact_type, spec)
        assert time.perf_counter() - start < 2.0, artifact_type


def _refused(artifact_type: str, spec: Any, **extra: Any) -> str:
    with pytest.raises(ValidationError) as info:
        ArtifactCreate(type=artifact_type, title="x", spec=spec, **extra)
    return str(info.value)


def test_hostile_specs_break_a_named_limit() -> None:
    assert "at most 5000" in _refused("spreadsheet", {"sheets": [{"rows": [[1]] * 10_000}]})
    assert "at most 100" in _refused("spreadsheet", {"sheets": [{"rows": [list(range(101))]}]})
    assert "outside the workbook" in _refused(
        "spreadsheet", {"sheets": [{"rows": [['=WEBSERVICE("http://x")'], ["=cmd|' /C calc'!A0"]]}]}
    )
    assert "finite" in _refused("spreadsheet", {"sheets": [{"rows": [[float("inf")]]}]})
    deep: Any = "leaf"
    for _ in range(5):
        deep = {"text": "x", "items": [deep]}
    assert "nest at most 3" in _refused("document", {"blocks": [{"type": "list", "items": [deep]}]})
    nested: Any = {}
    for _ in range(300):
        nested = {"a": nested}
    assert "cannot be stored" in _refused("document", {"blocks": [], "x": nested})
    assert "at most" in _refused("pdf", {"blocks": [{"type": "paragraph", "text": "x" * 20_001}]})
    assert "at most 2097152 bytes" in _refused("code", {"files": {f"f{i}.js": "x" * 150_000 for i in range(15)}})
    assert "relative file path" in _refused("code", {"files": {"../etc/passwd": "x"}})
    assert "entry_file" in _refused("code", {"files": {"a.js": "x"}, "entry_file": "b.js"})
    assert "4096 pixels" in _refused("presentation", {"slides": [{"image": png(5000, 10)}]})
    assert "PNG or JPEG" in _refused("presentation", {"slides": [{"image": "PHN2Zz48L3N2Zz4="}]})
    not_png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"junk" * 8).decode()  # the magic, then no header
    assert "cannot be read" in _refused("presentation", {"slides": [{"image": not_png}]})
    assert "at most 100" in _refused("presentation", {"slides": [{"title": "s"}] * 101})
    assert "block" in _refused("document", {"blocks": [{"type": "script", "text": "x"}]})
    _refused("video", {"blocks": []})  # not a type
    assert "NUL" in _refused("document", {"blocks": [{"type": "paragraph", "text": "a\x00b"}], "x\x00": 1})
    assert "valid string" in _refused("document", DOCUMENT, description="\ud800")  # lone surrogates
    assert "cannot be stored" in _refused("document", {"blocks": [{"type": "paragraph", "text": "\udfff"}]})
    with pytest.raises(ValidationError):
        ArtifactCreate(type="document", title="", spec=DOCUMENT)


def test_control_characters_are_dropped() -> None:
    paragraphs, _ = docx_paragraphs(make("document", {"blocks": [{"type": "paragraph", "text": "a\x01b\x0bc"}]}))
    assert ("Normal", "abc") in paragraphs
    rows, _ = xlsx_rows(make("spreadsheet", {"sheets": [{"rows": [["x\x02y"]]}]}))
    assert rows == [["xy"]]


def test_limits_are_what_the_docs_say() -> None:
    assert specs.MAX_ROWS < 10_000 <= specs.MAX_CELLS and specs.MAX_LIST_DEPTH == 3


def test_the_chat_convention() -> None:
    block = '{"type": "spreadsheet", "title": "Sales", "spec": {"sheets": [{"rows": [["a", 1], ["b", "=B1*2"]]}]}}'
    found, problem = find_block(f"Here it is:\n```artifact\n{block}\n```\nEnjoy.")
    assert problem is None and found is not None and found.type == "spreadsheet" and found.title == "Sales"
    assert find_block("no block here, only ```python\nprint(1)\n```") == (None, None)
    assert find_block("```artifact\n{not json}\n```")[1] == "The artifact block is not valid JSON"
    _, problem = find_block('```artifact\n{"type": "spreadsheet", "title": "x", "spec": {"sheets": []}}\n```')
    assert problem is not None and problem.startswith("Invalid artifact")
    assert "```artifact" in system_prompt("Base.") and system_prompt("Base.").startswith("Base.")
