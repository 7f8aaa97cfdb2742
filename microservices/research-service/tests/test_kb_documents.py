"""The knowledge base's uploads and search through the app (TestClient, internal auth), on
the embedded PostgreSQL with pgvector and the real all-MiniLM-L6-v2: what a user uploads is
found (by meaning and by exact terms), only by them; hostile files get a 4xx and leave
nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit, run_private
from research_service.app import create_app
from research_service.settings import Settings

from .kb_files import make_docx, make_pdf, zip_bomb_docx

SERVICE = "research-service"
ALICE, BOB = 101, 202


@pytest.fixture(scope="module")
def kit() -> InternalAuthKit:
    return InternalAuthKit()


@pytest.fixture(scope="module")
def client(kit: InternalAuthKit, pgvector_url: str) -> Iterator[TestClient]:
    settings = Settings(
        internal_auth_public_key=kit.public_key,
        redis_url="",
        database_url=pgvector_url,
        rag_max_upload_bytes=2_000_000,
        rag_max_pdf_pages=30,
        rag_max_docx_unpacked_bytes=5_000_000,
        rag_max_documents_per_user=12,
        rag_max_storage_bytes_per_user=3_000_000,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def as_user(kit: InternalAuthKit, user_id: int, admin: bool = False) -> dict[str, str]:
    return kit.headers(SERVICE, user_id=user_id, username=f"u{user_id}", is_admin=admin)


def upload(client: TestClient, headers: dict[str, str], name: str, data: bytes, mime: str = "application/octet-stream"):
    return client.post("/api/rag/documents", files={"file": (name, data, mime)}, headers=headers)


def search(client: TestClient, headers: dict[str, str], query: str, **extra: Any) -> list[dict[str, Any]]:
    r = client.post("/api/rag/search", json={"query": query, **extra}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def counts(pgvector_url: str, owner: int) -> tuple[int, int]:
    async def q() -> tuple[int, int]:
        conn = await asyncpg.connect(pgvector_url)
        try:
            docs = await conn.fetchval("SELECT count(*) FROM kb_documents WHERE owner_id = $1", owner)
            chunks = await conn.fetchval("SELECT count(*) FROM kb_chunks WHERE owner_id = $1", owner)
            return int(docs), int(chunks)
        finally:
            await conn.close()

    return run_private(q())


FILLER = (
    "Harbour logistics depend on cranes, tides and paperwork. Containers arrive in the morning and "
    "leave by rail in the evening. The port authority publishes schedules every week. "
)


def test_upload_is_searchable_and_private(client: TestClient, kit: InternalAuthKit, pgvector_url: str) -> None:
    alice, bob = as_user(kit, ALICE), as_user(kit, BOB)
    md = (
        "# Site handbook\n\n" + FILLER * 8 + "\n\n## Backups\n\n"
        "The nightly backup of the Zephyr cluster runs at 03:17 UTC and is kept for 45 days. "
        "Restores are tested every quarter by the storage team.\n\n## Canteen\n\n" + FILLER * 3
    )
    r = upload(client, alice, "handbook.md", md.encode(), "text/markdown")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["name"] == "handbook.md" and doc["source"] == "uploads" and doc["chunks"] >= 2
    assert doc["duplicate"] is False

    hits = search(client, alice, "When does the Zephyr cluster backup run?", k=3)
    assert hits and "03:17 UTC" in hits[0]["text"]
    assert hits[0]["document"] == "handbook.md" and hits[0]["source"] == "uploads"
    assert hits[0]["location"] == "Site handbook > Backups"
    assert {"text", "source", "document", "location", "score"} <= set(hits[0])

    # The same file again is the same document: nothing added.
    before = counts(pgvector_url, ALICE)
    again = upload(client, alice, "copy-of-handbook.md", md.encode())
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["id"] == doc["id"]
    assert counts(pgvector_url, ALICE) == before

    # Bob sees none of it: not in search, not in his list, not deletable.
    assert all("Zephyr" not in h["text"] for h in search(client, bob, "Zephyr cluster backup", k=10))
    assert client.get("/api/rag/documents", headers=bob).json()["documents"] == []
    assert client.delete(f"/api/rag/documents/{doc['id']}", headers=bob).status_code == 404
    listed = client.get("/api/rag/documents", headers=alice).json()
    assert [d["id"] for d in listed["documents"]] == [doc["id"]]
    assert listed["storage"]["used_bytes"] == len(md.encode())
    stats = client.get("/api/rag/sources", headers=alice).json()
    assert stats["indexed_stats"]["uploads"] == 1 and stats["total_documents"] >= 1
    assert client.get("/api/rag/sources", headers=bob).json()["indexed_stats"]["uploads"] == 0

    assert client.delete(f"/api/rag/documents/{doc['id']}", headers=alice).json()["deleted"] is True
    assert counts(pgvector_url, ALICE) == (0, 0)
    assert client.delete(f"/api/rag/documents/{doc['id']}", headers=alice).status_code == 404
    assert client.delete("/api/rag/documents/not-a-uuid", headers=alice).status_code == 422


def test_exact_identifiers_outrank_common_words(client: TestClient, kit: InternalAuthKit) -> None:
    user = as_user(kit, 303)
    noisy = "\n\n".join(
        f"Error handling note {i}: an error in the service is an error to log; every error gets an error code."
        for i in range(12)
    )
    assert upload(client, user, "errors.txt", noisy.encode()).status_code == 201
    codes = FILLER * 3 + "\n\nIf the gateway reports error QX-7731-ZEBRA, rotate the signing key and restart it."
    assert upload(client, user, "runbook.txt", codes.encode()).status_code == 201
    hits = search(client, user, "what does error QX-7731-ZEBRA mean", k=3)
    assert "QX-7731-ZEBRA" in hits[0]["text"], [h["text"][:60] for h in hits]
    # A paraphrase with none of its words still finds the backup sentence-level meaning.
    para = FILLER * 2 + "\n\nOur dog Biscuit sleeps in the laundry room and eats twice a day."
    assert upload(client, user, "pets.txt", para.encode()).status_code == 201
    hits = search(client, user, "where does the puppy rest", k=3)
    assert "Biscuit" in hits[0]["text"]
    only = search(client, user, "error", k=5, sources=["python_docs"])
    assert only == []


def test_pdf_and_docx_locations(client: TestClient, kit: InternalAuthKit) -> None:
    user = as_user(kit, 404)
    pdf = make_pdf([["Introduction to the manual.", "Nothing to see here."],
                    ["The calibration constant of sensor K9 is 4.2 millivolts.", "Check it monthly."]])  # fmt: skip
    r = upload(client, user, "manual.pdf", pdf, "application/pdf")
    assert r.status_code == 201, r.text
    hit = search(client, user, "calibration constant of sensor K9", k=1)[0]
    assert "4.2 millivolts" in hit["text"] and hit["location"] == "page 2" and hit["document"] == "manual.pdf"

    docx = make_docx([("h1", "Onboarding"), ("p", "Welcome aboard."), ("h2", "Laptops"),
                      ("p", "New staff receive a laptop with disk encryption enabled by the helpdesk."),
                      ("table", "Item|Owner\nBadge|Reception")])  # fmt: skip
    r = upload(client, user, "onboarding.docx", docx)
    assert r.status_code == 201, r.text
    hit = search(client, user, "who enables disk encryption on laptops", k=1)[0]
    assert "disk encryption" in hit["text"] and hit["location"] == "Onboarding > Laptops"
    assert any("Badge | Reception" in h["text"] for h in search(client, user, "badge reception owner", k=5))


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("bomb.docx", zip_bomb_docx(50 << 20), 413),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << >>\n%%EOF", 422),
        ("truncated.pdf", make_pdf([["half a file"]])[:150], 422),
        ("fake.pdf", b"MZ\x90\x00 this is an executable", 422),
        ("fake.docx", b"just text pretending", 422),
        ("notzip.docx", b"PK\x03\x04" + b"\x00" * 64, 422),
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", 415),
        ("empty.txt", b"", 422),
        ("blank.md", b"   \n\n  ", 422),
        ("huge.txt", b"a" * 2_100_000, 413),
        ("many-pages.pdf", make_pdf([[f"page {i}"] for i in range(31)]), 413),
        ("image.pdf", make_pdf([[]]), 422),
    ],
)
def test_hostile_uploads_leave_nothing(
    client: TestClient, kit: InternalAuthKit, pgvector_url: str, name: str, data: bytes, status: int
) -> None:
    user = as_user(kit, 505)
    r = upload(client, user, name, data)
    assert r.status_code == status, r.text
    assert r.json()["message"] and r.json()["detail"]
    assert counts(pgvector_url, 505) == (0, 0)


def test_path_names_and_wrong_requests(client: TestClient, kit: InternalAuthKit, pgvector_url: str) -> None:
    user = as_user(kit, 606)
    r = upload(client, user, "../../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n")
    assert r.status_code == 201 and r.json()["name"] == "passwd"
    r = upload(client, user, "C:\\Windows\\..\\notes.txt", b"a note about nothing in particular")
    assert r.status_code == 201 and r.json()["name"] == "notes.txt"
    assert counts(pgvector_url, 606)[0] == 2
    headers = as_user(kit, 606)
    assert client.post("/api/rag/documents", data={"x": "1"}, headers=headers).status_code == 422
    assert client.post("/api/rag/documents", json={"file": "x"}, headers=headers).status_code == 422
    big = client.post("/api/rag/documents", content=b"x" * 3_000_000,
                      headers={**headers, "Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip
    assert big.status_code == 413
    assert client.post("/api/rag/search", json={"query": " "}, headers=headers).status_code == 422
    assert client.post("/api/rag/search", json={"query": "x", "sources": ["nope"]}, headers=headers).status_code == 422
    assert client.post("/api/rag/search", json={"query": "x", "k": 0}, headers=headers).status_code == 422


def test_per_user_limits(client: TestClient, kit: InternalAuthKit, pgvector_url: str) -> None:
    user = as_user(kit, 707)
    for i in range(12):
        assert upload(client, user, f"n{i}.txt", f"note number {i} about topic {i * 7}".encode()).status_code == 201
    r = upload(client, user, "one-more.txt", b"the thirteenth note")
    assert r.status_code == 409 and "delete some" in r.json()["message"]
    assert counts(pgvector_url, 707)[0] == 12

    other = as_user(kit, 708)
    assert upload(client, other, "a.txt", b"b" * 1_600_000).status_code == 201
    r = upload(client, other, "b.txt", b"c" * 1_600_000)
    assert r.status_code == 413 and "does not fit" in r.json()["message"]
    assert counts(pgvector_url, 708)[0] == 1
