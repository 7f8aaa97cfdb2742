"""/api/artifacts with the real worker (core-api's routers on a real uvicorn, PostgreSQL):
every type from POST to a downloaded file its consumer opens; the code preview; owner only
(404 for anyone else, on every route); 409 until ready; limits and the quota as 4xx; a render
that fails ends `failed` with a message; and a chat turn whose answer holds an artifact block."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from typing import Any

import httpx
import pytest
from artifact_support import CODE, SPECS, docx_paragraphs, pdf_text, pptx_slides, xlsx_rows
from chat_support import ChatServer, ChatServerFactory, bearer, chat_events

from core_api.artifacts.service import Artifacts


async def wait_done(c: httpx.AsyncClient, h: dict[str, str], artifact_id: str, wait_s: float = 20) -> dict[str, Any]:
    for _ in range(int(wait_s / 0.05)):
        r = await c.get(f"/api/artifacts/{artifact_id}", headers=h)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("ready", "failed"):
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"artifact {artifact_id} still {r.json()['status']}")


async def test_every_type_from_spec_to_file(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    h = bearer(token)
    async with chat_server.client() as c:
        made: dict[str, dict[str, Any]] = {}
        for artifact_type, spec in SPECS.items():
            r = await c.post(
                "/api/artifacts", json={"type": artifact_type, "title": f"My {artifact_type}", "spec": spec}, headers=h
            )
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["status"] == "generating" and body["artifact_type"] == artifact_type
            assert body["download_url"] == body["downloadUrl"] == f"/api/artifacts/{body['id']}/download"
            made[artifact_type] = body
        for artifact_type, body in made.items():
            done = await wait_done(c, h, body["id"])
            assert done["status"] == "ready" and done["error_message"] is None, done
            assert done["file_size"] > 0 and done["mime_type"] and done["expires_at"]
            r = await c.get(done["download_url"], headers=h)
            assert r.status_code == 200 and r.headers["content-type"].startswith(done["mime_type"])
            ext = {"spreadsheet": "xlsx", "document": "docx", "pdf": "pdf", "presentation": "pptx"}.get(
                artifact_type, "zip"
            )
            assert f'filename="My {artifact_type}.{ext}"' in r.headers["content-disposition"]
            assert r.headers["content-disposition"].startswith("attachment;")
            data = r.content
            if artifact_type == "spreadsheet":
                rows, ws = xlsx_rows(data)
                assert rows == [["a", 1, 2.5], ["b", 3, "=B1+B2"]] and ws["C2"].data_type == "f"
            elif artifact_type == "document":
                assert ("Heading 1", "Quarterly report") in docx_paragraphs(data)[0]
            elif artifact_type == "pdf":
                assert "Quarterly report" in pdf_text(data)
            elif artifact_type == "presentation":
                assert [t for t, _ in pptx_slides(data)] == ["Intro", "End"]
            else:
                assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["App.tsx", "styles.css"]
                assert done["content"]["entry_file"] == done["content"]["entryFile"] == "App.tsx"
                assert done["framework"] == "react" and done["preview_url"].endswith("/preview")
                p = await c.get(done["preview_url"], headers=h)
                assert p.status_code == 200
                assert p.json() == {
                    "content": {
                        "files": {"App.tsx": CODE["files"]["/App.tsx"], "styles.css": "h1 {}"},
                        "entry_file": "App.tsx",
                        "entryFile": "App.tsx",
                        "dependencies": {"react": "^18.2.0"},
                    },
                    "framework": "react",
                    "dependencies": {"react": "^18.2.0"},
                }
        # Titles in any script: an ASCII filename, and the exact one in filename*.
        r = await c.post(
            "/api/artifacts", json={"type": "pdf", "title": 'Café 日本 "q"', "spec": SPECS["pdf"]}, headers=h
        )
        done = await wait_done(c, h, r.json()["id"])
        d = await c.get(done["download_url"], headers=h)
        assert d.status_code == 200
        assert d.headers["content-disposition"] == (
            "attachment; filename=\"Caf_ __ _q_.pdf\"; filename*=UTF-8''Caf%C3%A9%20%E6%97%A5%E6%9C%AC%20_q_.pdf"
        )
        await c.delete(f"/api/artifacts/{done['id']}", headers=h)
        # A document has no code preview.
        assert (await c.get(f"/api/artifacts/{made['pdf']['id']}/preview", headers=h)).status_code == 409

        listed = (await c.get("/api/artifacts/", headers=h)).json()["artifacts"]
        assert {a["id"] for a in listed} == {b["id"] for b in made.values()}
        assert all(a["status"] == "ready" and a["artifact_type"] and a["file_size"] > 0 for a in listed)

        r = await c.delete(f"/api/artifacts/{made['pdf']['id']}", headers=h)
        assert r.status_code == 200
        assert (await c.get(f"/api/artifacts/{made['pdf']['id']}", headers=h)).status_code == 404
        assert (await c.delete(f"/api/artifacts/{made['pdf']['id']}", headers=h)).status_code == 404


async def test_owner_only(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    _, other = await chat_server.user()
    async with chat_server.client() as c:
        r = await c.post("/api/artifacts", json={"type": "code", "title": "mine", "spec": CODE}, headers=bearer(token))
        aid = r.json()["id"]
        await wait_done(c, bearer(token), aid)
        for method, path in (
            ("GET", f"/api/artifacts/{aid}"),
            ("GET", f"/api/artifacts/{aid}/download"),
            ("GET", f"/api/artifacts/{aid}/preview"),
            ("DELETE", f"/api/artifacts/{aid}"),
        ):
            r = await c.request(method, path, headers=bearer(other))
            assert r.status_code == 404, (method, path, r.text)
            assert (await c.request(method, path)).status_code == 401
            assert (await c.request(method, path.replace(aid, "not-a-uuid"), headers=bearer(token))).status_code == 422
        assert (await c.get("/api/artifacts/", headers=bearer(other))).json() == {"artifacts": []}
        assert (await c.get(f"/api/artifacts/{aid}", headers=bearer(token))).status_code == 200  # still there


async def test_download_is_409_until_ready_and_jobs_wait_for_a_worker(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    h = bearer(token)
    artifacts: Artifacts = chat_server.app.state.artifacts
    await artifacts.worker.stop()  # no worker: the job waits in PostgreSQL
    async with chat_server.client() as c:
        r = await c.post(
            "/api/artifacts", json={"type": "spreadsheet", "title": "t", "spec": SPECS["spreadsheet"]}, headers=h
        )
        aid = r.json()["id"]
        d = await c.get(f"/api/artifacts/{aid}/download", headers=h)
        assert d.status_code == 409 and d.json()["status"] == "generating"
        # A worker starting later (a restart) takes it.
        artifacts.worker = type(artifacts.worker)(artifacts.store, workers=1, render_timeout_s=30)
        artifacts.start()
        assert (await wait_done(c, h, aid))["status"] == "ready"
        assert (await c.get(f"/api/artifacts/{aid}/download", headers=h)).status_code == 200


async def test_hostile_requests_are_4xx(make_chat_server: ChatServerFactory) -> None:
    server = await make_chat_server(artifact_storage_quota_mb=1)
    _, token = await server.user()
    h = bearer(token)
    async with server.client() as c:
        bad = [
            {"type": "spreadsheet", "title": "t", "spec": {"sheets": [{"rows": [[1]] * 10_000}]}},
            {"type": "document", "title": "t", "spec": {"blocks": [{"type": "script", "text": "x"}]}},
            {"type": "exe", "title": "t", "spec": {}},
            {"type": "code", "title": "t", "spec": {"files": {"/../../x": "y"}}},
            {"type": "pdf", "title": "", "spec": SPECS["pdf"]},
            {"type": "pdf", "title": "t"},
        ]
        for body in bad:
            r = await c.post("/api/artifacts", json=body, headers=h)
            assert r.status_code == 422, (body["type"], r.text)
        r = await c.post("/api/artifacts", content=b"[" * 200_000 + b"]" * 200_000, headers=h)
        assert r.status_code in (400, 422)
        huge = {"type": "code", "title": "t", "spec": {"files": {"a.js": "x" * 4_000_000}}}
        r = await c.post("/api/artifacts", json=huge, headers=h)
        assert r.status_code == 413
        # 1 MiB quota: a 0.9 MB spec fits once, not twice.
        big = {"type": "code", "title": "t", "spec": {"files": {f"f{i}.js": "x" * 150_000 for i in range(6)}}}
        assert (await c.post("/api/artifacts", json=big, headers=h)).status_code == 201
        r = await c.post("/api/artifacts", json=big, headers=h)
        assert r.status_code == 413 and "quota" in r.json()["detail"]


async def test_a_failing_render_ends_failed_with_a_message(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    h = bearer(token)
    artifacts: Artifacts = chat_server.app.state.artifacts
    async with chat_server.client() as c:
        me = (await c.get("/api/auth/me", headers=h)).json()
        # A stored spec that no longer validates (as if written before a limit was lowered).
        row = await artifacts.store.create(me["id"], "spreadsheet", "broken", {"sheets": "nope"})
        done = await wait_done(c, h, row["id"])
        assert done["status"] == "failed" and done["error_message"].startswith("Invalid spec")
        assert done["errorMessage"] == done["error_message"]
        assert (await c.get(f"/api/artifacts/{row['id']}/download", headers=h)).status_code == 409


async def test_chat_makes_the_artifact_it_is_asked_for(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    h = bearer(token)
    block = (
        '{"type": "spreadsheet", "title": "Fruit", "spec": {"sheets": [{"name": "Fruit", "header": true,'
        ' "rows": [["Fruit", "Qty"], ["apple", 3], ["pear", 4], ["Total", "=SUM(B2:B3)"]]}]}}'
    )
    async with chat_server.client() as c:
        # The fake model echoes the message: its answer holds the block.
        _, events, _ = await chat_events(c, token, {"message": f"Make a spreadsheet\n```artifact\n{block}\n```"})
        done = events[-1]
        assert done["status"] == "complete", done
        art = done["artifact"]
        assert art["type"] == "spreadsheet" and art["title"] == "Fruit" and art["status"] == "generating"
        assert art["download_url"] == art["downloadUrl"] == f"/api/artifacts/{art['id']}/download"
        sent = chat_server.fake.stats["last_request"]["messages"][0]
        assert sent["role"] == "system" and "```artifact" in sent["content"]

        ready = await wait_done(c, h, art["id"])
        assert ready["status"] == "ready" and ready["session_id"] == done["session_id"]
        assert ready["message_id"] == done["message_id"]
        rows, ws = xlsx_rows((await c.get(art["download_url"], headers=h)).content)
        assert rows[1] == ["apple", 3] and rows[3] == ["Total", "=SUM(B2:B3)"] and ws["B4"].data_type == "f"

        history = (await c.get(f"/api/chat-history/sessions/{done['session_id']}", headers=h)).json()
        assistant = history["messages"][-1]
        assert assistant["role"] == "assistant" and assistant["metadata"]["artifact"] == art
        # The block is the artifact, not also a code snippet.
        assert [a["id"] for a in (await c.get("/api/artifacts/", headers=h)).json()["artifacts"]] == [art["id"]]

        _, events, _ = await chat_events(c, token, {"message": '```artifact\n{"type": "pdf", "title": "x"}\n```'})
        assert "artifact" not in events[-1] and events[-1]["artifact_error"].startswith("Invalid artifact")


async def test_chat_artifacts_can_be_turned_off(make_chat_server: ChatServerFactory) -> None:
    server = await make_chat_server(chat_artifacts=False)
    _, token = await server.user()
    async with server.client() as c:
        block = '{"type": "code", "title": "x", "spec": {"files": {"a.js": "1"}}}'
        _, events, _ = await chat_events(c, token, {"message": f"```artifact\n{block}\n```"})
        assert "artifact" not in events[-1] and "artifact_error" not in events[-1]
        sent = server.fake.stats["last_request"]["messages"][0]
        assert "```artifact" not in sent["content"]


@pytest.mark.parametrize("path", ["", "/download", "/preview"])
async def test_unknown_ids_are_404(chat_server: ChatServer, path: str) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        r = await c.get(f"/api/artifacts/{uuid.uuid4()}{path}", headers=bearer(token))
        assert r.status_code == 404
