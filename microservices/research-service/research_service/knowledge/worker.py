"""The ingestion worker: an asyncio task in each research-service process that takes pending
jobs from PostgreSQL one at a time and runs them.

A job goes over its sources in order. For each it lists what to read (the source's pages,
files, or for a rebuild of uploads the stored documents), so `total_docs` is known before the
first document is read, then reads and ingests them one by one, writing `processed`,
`current_source` and `current_phase` (fetching, reading, chunking, embedding, storing) as it
goes. Two jobs never work on the same source at once: a job takes the source's advisory lock
first (waiting, and saying so, while another job has it). Between documents it checks whether
it was cancelled. A source that yields nothing (no internet, no local roots, nothing found) is
an error for that source; the job ends FAILED when every source failed, else COMPLETED with
the failures in `error` and the counts per source in `report`.

The worker's own connection holds the job's lock (see store/jobs.py): if the process dies, the
next start (of any replica) finds the job RUNNING and unlocked, and runs it again — the
documents it already stored are unchanged and skipped by their content hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg

from ..fetch import PageFetcher
from ..store.documents import NewDocument
from ..store.jobs import CANCELLED_MESSAGE, COMPLETED, FAILED
from .base import KnowledgeBase, sections_hash
from .catalogue import LOCAL, SOURCES, UPLOAD, WEB, web_targets
from .chunking import Section
from .extract import MIME, ExtractError, extract, html_sections, kind_of, text_sections
from .local import list_files, read_local

log = logging.getLogger("research.kb.worker")

POLL_S = 2.0  # for jobs created by other replicas (this one's wake the worker at once)
RECOVER_EVERY_S = 30.0
LOCK_WAIT_S = 0.5


class Cancelled(Exception):
    pass


class Worker:
    def __init__(self, kb: KnowledgeBase, dsn: str, fetcher: PageFetcher) -> None:
        self.kb, self.dsn, self.fetcher = kb, dsn, fetcher
        self.jobs = kb.jobs
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.current: str | None = None
        self.error = ""

    # ------------------------------------------------------------ the loop

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="kb-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                self.error = f"cannot connect: {exc}"
                await asyncio.sleep(5)
                continue
            try:
                await self._serve(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("knowledge-base worker lost its connection", extra={"error": self.error})
                await asyncio.sleep(2)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=2))

    async def _serve(self, conn: asyncpg.Connection) -> None:
        loop = asyncio.get_running_loop()
        next_recovery = 0.0
        while True:
            self.error = ""
            if loop.time() >= next_recovery:
                for job_id, status in await self.jobs.recover():
                    log.info("interrupted ingestion job recovered", extra={"job_id": job_id, "status": status})
                next_recovery = loop.time() + RECOVER_EVERY_S
            job = await self.jobs.claim(conn)
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                continue
            self.current = str(job["id"])
            try:
                await self._run(conn, job)
            except asyncio.CancelledError:  # the service is stopping: the job runs again at the next start
                await asyncio.shield(self.jobs.requeue(job["id"]))
                raise
            except Exception as exc:
                log.exception("ingestion job failed", extra={"job_id": self.current})
                await self.jobs.finish(job["id"], FAILED, f"Failed on our side: {type(exc).__name__}", {})
            finally:
                self.current = None
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.jobs.release(conn, job["id"]))

    # ------------------------------------------------------------ one job

    async def _run(self, conn: asyncpg.Connection, job: asyncpg.Record) -> None:
        run = JobRun(self, conn, job)
        await run.run()


class JobRun:
    def __init__(self, worker: Worker, conn: asyncpg.Connection, job: asyncpg.Record) -> None:
        self.w, self.conn, self.job = worker, conn, job
        self.kb = worker.kb
        self.settings = worker.kb.settings
        self.id = job["id"]
        self.user_id: int = job["user_id"]
        self.rebuild = job["kind"] == "rebuild"
        params = job["params"]
        self.params: dict[str, Any] = json.loads(params) if isinstance(params, str) else dict(params)
        self.report: dict[str, dict[str, Any]] = {}
        self.processed = 0
        self.total = 0

    async def progress(self, **fields: Any) -> None:
        if await self.kb.jobs.progress(self.id, **fields):
            raise Cancelled

    async def run(self) -> None:
        plan: list[tuple[str, list[Any], list[str]]] = []
        await self.progress(current_phase="planning")
        extra_urls = list(self.params.get("extra_urls", []))
        for source_id in self.job["sources"]:
            targets, notes = await self.plan(source_id, extra_urls if SOURCES[source_id].kind == WEB else [])
            if SOURCES[source_id].kind == WEB:
                extra_urls = []  # read once, under the first web-doc source
            plan.append((source_id, targets, notes))
            self.report[source_id] = {"documents": len(targets), "added": 0, "updated": 0, "unchanged": 0,
                                      "failed": 0, "removed": 0, "chunks": 0, "errors": notes[:20]}  # fmt: skip
        self.total = sum(len(t) for _, t, _ in plan)
        try:
            await self.progress(total_docs=self.total, processed=0, report=self.report)
            for source_id, targets, _ in plan:
                await self.source(source_id, targets)
        except Cancelled:
            await self.kb.jobs.finish(self.id, FAILED, CANCELLED_MESSAGE, self.report)
            return
        failed = [s for s in self.report if self.failed(s)]
        problems = [f"{s}: {self.summary(s)}" for s, r in self.report.items() if r["errors"] or s in failed]
        status = FAILED if failed and len(failed) == len(self.report) else COMPLETED
        await self.kb.jobs.finish(self.id, status, "; ".join(problems) or None, self.report)

    def failed(self, source_id: str) -> bool:
        """Nothing read from the source (an upload rebuild with nothing to rebuild is fine)."""
        r = self.report[source_id]
        done = r["added"] + r["updated"] + r["unchanged"] + r["removed"]
        return done == 0 and SOURCES[source_id].kind != UPLOAD

    def summary(self, source_id: str) -> str:
        r = self.report[source_id]
        if r["documents"] == 0:
            return (r["errors"] or ["nothing to read"])[0]
        ok = r["added"] + r["updated"] + r["unchanged"]
        first = f" (first: {r['errors'][0]})" if r["errors"] else ""
        return f"{ok} of {r['documents']} documents read{first}"

    # ------------------------------------------------------------ what to read

    def owner(self, source_id: str) -> int | None:
        return self.user_id if SOURCES[source_id].kind == UPLOAD else None

    async def plan(self, source_id: str, extra_urls: list[str]) -> tuple[list[Any], list[str]]:
        """(the targets of a source: URLs, file paths or stored documents; notes on what was skipped)."""
        source = SOURCES[source_id]
        owner = self.owner(source_id)
        known = await self.kb.documents.of_source(source_id, owner) if self.rebuild else []
        if source.kind == UPLOAD:
            return list(known), []
        if source.kind == WEB:
            urls = web_targets(source, self.params, extra_urls, self.settings.rag_web_max_pages)
            urls += [r["uri"] for r in known if r["uri"] not in urls]
            return urls, ([] if urls else ["no pages to read: give keywords or extra_urls"])
        roots = self.settings.local_roots
        if not roots:
            return [], ["no local directories are configured (RAG_LOCAL_ROOTS)"]
        dirs = list(self.params.get("ansible_paths", [])) if source_id == "ansible_playbooks" else []
        files, skipped = await asyncio.to_thread(
            list_files, dirs or roots, roots, source.files, self.settings.rag_max_upload_bytes
        )
        files += [r["uri"] for r in known if r["uri"] not in files]  # gone files are removed below
        return files, skipped + ([] if files else ["no files found under the allowed directories"])

    # ------------------------------------------------------------ reading

    async def source(self, source_id: str, targets: list[Any]) -> None:
        key = f"{source_id}:{self.owner(source_id) or ''}"
        await self.progress(current_source=source_id, current_phase="waiting for the source")
        while not await self.kb.jobs.lock_source(self.conn, key):
            await self.progress(current_phase="waiting for another job on this source")
            await asyncio.sleep(LOCK_WAIT_S)
        try:
            kind = SOURCES[source_id].kind
            if kind == WEB:
                await self.web(source_id, targets)
            elif kind == LOCAL:
                for path in targets:
                    await self.one(source_id, path, self.local(source_id, path))
            else:
                for row in targets:
                    await self.one(source_id, row["uri"], self.stored(source_id, row))
        finally:
            await self.kb.jobs.unlock_source(self.conn, key)

    async def web(self, source_id: str, urls: list[str]) -> None:
        batch = max(1, self.settings.research_fetch_concurrency)
        for i in range(0, len(urls), batch):
            await self.progress(current_phase="fetching")
            fetched = await asyncio.gather(*(self.w.fetcher.fetch_text(u) for u in urls[i : i + batch]))
            for got in fetched:
                await self.one(source_id, got.url, self.page(source_id, got))

    async def page(self, source_id: str, got: Any) -> NewDocument | str:
        if got.error:
            return got.error
        if got.mime == "text/plain":
            title, sections = got.final_url, text_sections(got.text)
        else:
            title, sections = await asyncio.to_thread(html_sections, got.text, got.final_url)
        if not sections:
            return "no main text found"
        return self.document(source_id, got.url, title, "text/html", len(got.text.encode()), sections)

    async def local(self, source_id: str, path: str) -> NewDocument | str | None:
        await self.progress(current_phase="reading")
        roots = self.settings.local_roots
        try:
            found = await asyncio.to_thread(read_local, path, roots, self.settings.rag_max_upload_bytes)
            if found is None:
                return None  # gone (or no longer allowed): its document is removed
            real, name, data = found
            kind = "text" if source_id == "ansible_playbooks" else kind_of(name, data)
            title, sections = await asyncio.to_thread(extract, kind, data, name, self.kb.limits)
        except ExtractError as exc:
            return exc.message
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        return self.document(source_id, real, title, MIME[kind], len(data), sections)

    async def stored(self, source_id: str, row: asyncpg.Record) -> NewDocument:
        raw = row["sections"]
        items = json.loads(raw) if isinstance(raw, str) else raw
        sections = [Section(s["location"], s["text"], s.get("heading", False)) for s in items]
        return NewDocument(source_id, self.owner(source_id), row["uri"], row["title"], row["mime"],
                           row["size_bytes"], sections_hash(sections), sections)  # fmt: skip

    def document(
        self, source_id: str, uri: str, title: str, mime: str, size: int, sections: list[Section]
    ) -> NewDocument:
        return NewDocument(
            source_id, self.owner(source_id), uri, title[:300], mime, size, sections_hash(sections), sections
        )

    async def one(self, source_id: str, uri: str, prepared: Any) -> None:
        """Ingest one target (a coroutine giving its document, or why it has none)."""
        r = self.report[source_id]
        doc = await prepared
        if doc is None:
            existing = await self.kb.documents.find(source_id, self.owner(source_id), uri)
            if existing is not None:
                await self.kb.documents.delete(existing["id"])
                r["removed"] += 1
        elif isinstance(doc, str):
            r["failed"] += 1
            if len(r["errors"]) < 20:
                r["errors"].append(f"{uri}: {doc}" if not doc.startswith(uri) else doc)
        else:

            async def phase(name: str) -> None:
                await self.progress(current_phase=name)

            outcome = await self.kb.ingest(doc, force=self.rebuild, phase=phase)
            r[outcome.status] += 1
            r["chunks"] += outcome.chunks
        self.processed += 1
        await self.progress(processed=self.processed, report=self.report)
