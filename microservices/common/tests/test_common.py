"""harvis_common's own behaviour: logs, errors, request ids, internal tokens."""

from __future__ import annotations

import io
import json
import logging
import time

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from harvis_common.errors import install_error_handlers
from harvis_common.internal_auth import (
    ISSUER,
    InternalAuthError,
    InternalSigner,
    InternalVerifier,
    generate_keypair,
    load_private_key,
    load_public_key,
)
from harvis_common.logging import JsonFormatter, request_id_var
from harvis_common.middleware import clean_request_id


def test_json_log_lines_carry_request_id_and_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    logger = logging.getLogger("harvis.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id_var.set("rid-7")
    try:
        logger.info("hello %s", "world", extra={"user_id": 5})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "hello world"
    assert (line["service"], line["request_id"], line["user_id"], line["level"]) == ("svc", "rid-7", 5, "INFO")


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (b"abc-123", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"bad id", False),
        (b"x\r\nInjected: 1", False),
        ("é".encode(), False),
        (None, False),
    ],
)
def test_request_ids_are_kept_only_when_safe(raw: bytes | None, kept: bool) -> None:
    rid = clean_request_id(raw)
    if kept:
        assert rid == raw.decode()
    else:
        assert rid != (raw or b"").decode(errors="replace") and len(rid) == 32


class Item(BaseModel):
    name: str
    count: int


def _error_app() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/items")
    async def create(item: Item) -> dict[str, object]:
        return item.model_dump()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return TestClient(app, raise_server_exceptions=False)


def test_validation_errors_are_422_json_with_readable_message_and_no_echoed_input() -> None:
    r = _error_app().post("/items", json={"name": "hunter2-secret", "count": "many"})
    assert r.status_code == 422
    body = r.json()
    assert "count" in body["message"]
    assert "hunter2-secret" not in r.text and "many" not in r.text


def test_malformed_json_is_422_not_500() -> None:
    r = _error_app().post("/items", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["message"]


def test_unexpected_errors_are_json_500_without_internals() -> None:
    r = _error_app().get("/boom")
    assert r.status_code == 500
    assert r.json()["message"] and "secret internals" not in r.text


def test_internal_token_round_trip_and_key_formats() -> None:
    priv, pub = generate_keypair()
    token = InternalSigner(priv, ttl_s=30).sign(
        "mcp-service", user_id=9, email="x@y.z", username="x", is_admin=True, request_id="r"
    )
    ident = InternalVerifier(pub, "mcp-service").verify(token)
    assert (ident.user_id, ident.email, ident.is_admin, ident.request_id) == (9, "x@y.z", True, "r")
    with pytest.raises(ValueError):
        load_private_key("too-short")
    with pytest.raises(ValueError):
        load_public_key("!!!")


def test_internal_token_issued_in_the_future_or_of_wrong_type_is_refused() -> None:
    priv, pub = generate_keypair()
    key = load_private_key(priv)
    now = int(time.time())
    base = {"iss": ISSUER, "aud": "svc", "typ": "internal", "sub": "1", "iat": now, "exp": now + 60}
    verifier = InternalVerifier(pub, "svc")
    for claims in (
        {**base, "iat": now + 3600, "exp": now + 7200},
        {**base, "typ": "access"},
        {**base, "sub": "not-a-number"},
        {k: v for k, v in base.items() if k != "exp"},
    ):
        with pytest.raises(InternalAuthError):
            verifier.verify(jwt.encode(claims, key, algorithm="EdDSA"))
