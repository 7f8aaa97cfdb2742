"""Grounded chat end to end through nginx :9000: a document uploaded to the knowledge base
(research-service's /api/rag/documents) is what `/api/chat` puts in front of the model when
the request says `use_knowledge_base` (or the user's preference does), and the `complete` event
cites it. core-api is restarted against the fake Ollama (tests/fakes, Ollama's NDJSON wire
format) to read what the model was given, and restored afterwards.

core-api searches research-service as the user of the turn (a signed X-Internal-Auth for
research-service): another user's chat never sees the document. With research-service stopped,
a grounded chat still completes, without excerpts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import FakeOllamaProcess, Fleet, User, new_user

from harvis_testkit import parse_sse  # on the path from conftest

QUESTION = "What is the vault door code for the archive?"


@pytest.fixture(scope="module")
def fake_llm(fleet_proc: Fleet) -> Iterator[FakeOllamaProcess]:
    """core-api restarted against the fake Ollama, restored afterwards."""
    with FakeOllamaProcess(fleet_proc, "fake-ollama-grounded") as llm:
        try:
            env = {"LLM_PROVIDER": "ollama", "OLLAMA_URL": llm.url, "DEFAULT_MODEL": "fake-llama:latest",
                   "VISION_MODEL": "fake-vision:latest", "SSE_HEARTBEAT_S": "0.3", "CHAT_MAX_TOKENS": "0"}  # fmt: skip
            fleet_proc.restart("core-api", env)
            yield llm
        finally:
            fleet_proc.restart("core-api")


def upload(client: httpx.Client, user: User, name: str, data: bytes) -> httpx.Response:
    return client.post("/api/rag/documents", files={"file": (name, data)}, headers=user.bearer, timeout=120)


def chat(client: httpx.Client, user: User, body: dict[str, Any]) -> dict[str, Any]:
    with client.stream("POST", "/api/chat", json=body, headers=user.bearer, timeout=180) as r:
        assert r.status_code == 200, r.read()
        events = parse_sse(r.read())[0]
    assert events[0]["status"] == "starting"
    assert [e["status"] for e in events].count("complete") == 1, events
    done = events[-1]
    assert done["status"] == "complete", done
    return done


def given(llm: FakeOllamaProcess) -> tuple[str, str]:
    """(the system prompt, the user's message) of the model's last request."""
    messages = llm.stats()["last_request"]["messages"]
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, messages[-1]["content"]


def vault_document(client: httpx.Client, user: User) -> str:
    """A document with a unique fact, uploaded for `user`: its code."""
    code = f"KB-{uuid.uuid4().hex[:6].upper()}"
    text = f"# Vault\n\nThe vault door code for the archive is {code}; it is rotated every Monday.\n"
    r = upload(client, user, "vault.md", text.encode())
    assert r.status_code == 201, r.text
    return code


def test_chat_cites_the_uploaded_document(client: httpx.Client, fake_llm: FakeOllamaProcess) -> None:
    user = new_user(client)
    code = vault_document(client, user)

    done = chat(client, user, {"message": QUESTION, "history": [], "model": "mistral", "use_knowledge_base": True})
    system, asked = given(fake_llm)
    assert code in system and "[1] vault.md (Vault)" in system  # the numbered excerpt reached the model
    assert asked == QUESTION
    assert done["final_answer"] == f"Echo: {QUESTION}"
    assert done["knowledge_base"]["used"] is True and done["knowledge_base"]["error"] is None
    cited = done["sources"][0]
    assert (cited["index"], cited["document"], cited["source"]) == (1, "vault.md", "uploads")
    assert cited["location"] == "Vault"
    assert cited["locations"] == ["Vault"]

    # The reopened session shows the sources with the answer.
    detail = client.get(f"/api/chat-history/sessions/{done['session_id']}", headers=user.bearer).json()
    answer = detail["messages"][-1]
    assert answer["id"] == done["message_id"] and answer["metadata"]["sources"] == done["sources"]

    # Without the flag (and the preference off, the default) nothing is searched.
    done = chat(client, user, {"message": QUESTION, "history": [], "model": "mistral"})
    assert "sources" not in done and code not in given(fake_llm)[0]

    # Another user's grounded chat searches as that user: the document is not theirs.
    stranger = new_user(client)
    done = chat(client, stranger, {"message": QUESTION, "history": [], "model": "mistral", "use_knowledge_base": True})
    assert all(s["document"] != "vault.md" or s["source"] != "uploads" for s in done["sources"]), done["sources"]
    assert code not in given(fake_llm)[0]


def test_the_preference_grounds_every_chat(client: httpx.Client, fake_llm: FakeOllamaProcess) -> None:
    user = new_user(client)
    code = vault_document(client, user)
    r = client.get("/api/user/preferences", headers=user.bearer)
    assert r.status_code == 200 and r.json() == {"use_knowledge_base": False}
    r = client.put("/api/user/preferences", json={"use_knowledge_base": True}, headers=user.bearer)
    assert r.status_code == 200 and r.json() == {"use_knowledge_base": True}

    done = chat(client, user, {"message": QUESTION, "history": [], "model": "mistral"})
    assert done["sources"][0]["document"] == "vault.md" and code in given(fake_llm)[0]

    # The request's flag wins.
    done = chat(client, user, {"message": QUESTION, "history": [], "model": "mistral", "use_knowledge_base": False})
    assert "sources" not in done and code not in given(fake_llm)[0]


def test_chat_completes_while_the_knowledge_base_is_down(
    client: httpx.Client, fleet_proc: Fleet, fake_llm: FakeOllamaProcess
) -> None:
    user = new_user(client)
    fleet_proc.stop("research-service")
    try:
        done = chat(client, user, {"message": QUESTION, "history": [], "model": "mistral", "use_knowledge_base": True})
        assert done["final_answer"] == f"Echo: {QUESTION}"
        assert done["sources"] == [] and done["knowledge_base"]["used"] is False
        assert done["knowledge_base"]["error"]
    finally:
        fleet_proc.restart("research-service")
