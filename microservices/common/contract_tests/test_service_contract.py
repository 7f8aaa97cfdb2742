"""What every service promises, run inside each service's own venv against its
app (`HARVIS_SERVICE_APP=pkg.main:app`): open probes, internal auth enforced
on everything else, JSON errors, request ids, diagnostics."""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from harvis_common.internal_auth import HEADER, ISSUER, InternalSigner, load_private_key
from harvis_common.manifest import MANIFEST_FILE
from harvis_common.manifest import load as load_manifest
from harvis_testkit import InternalAuthKit, manifest_problems

APP_REF = os.environ.get("HARVIS_SERVICE_APP", "")
SERVICE = os.environ.get("HARVIS_SERVICE_NAME", "")
MICRO = Path(__file__).resolve().parents[2]

if not APP_REF:
    raise RuntimeError("set HARVIS_SERVICE_APP=<package>.main:app and HARVIS_SERVICE_NAME (fleet.py test does)")


def tamper(token: str) -> str:
    """Same signature, payload changed to another user."""
    head, payload, sig = token.split(".")
    claims = jwt.utils.base64url_decode(payload).replace(b'"sub":"1"', b'"sub":"2"')
    assert b'"sub":"2"' in claims
    return f"{head}.{jwt.utils.base64url_encode(claims).decode()}.{sig}"


@pytest.fixture(scope="module")
def kit() -> InternalAuthKit:
    return InternalAuthKit()


@pytest.fixture(scope="module")
def client(kit: InternalAuthKit):
    os.environ["INTERNAL_AUTH_PUBLIC_KEY"] = kit.public_key
    module_name, _, attr = APP_REF.partition(":")
    app = getattr(importlib.import_module(module_name), attr)
    with TestClient(app) as c:
        yield c


def slug(client: TestClient) -> str:
    paths = [p for p in client.app.openapi()["paths"] if p.endswith("/diagnostics/whoami")]
    assert len(paths) == 1
    return paths[0].removesuffix("/diagnostics/whoami")


def test_health_and_ready_are_open(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["service"] == SERVICE
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["internal_auth"]["ok"] is True


def test_valid_internal_token_reaches_route_with_identity(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.get(
        f"{slug(client)}/diagnostics/whoami",
        headers={**kit.headers(SERVICE, user_id=42, username="grace"), "X-Request-ID": "abc-123"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["user_id"], body["username"], body["service"]) == (42, "grace", SERVICE)
    assert r.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    "case",
    ["missing", "garbage", "other_key", "wrong_audience", "expired", "alg_none", "tampered", "hs256_with_public_key"],
)
def test_bad_internal_tokens_are_rejected(client: TestClient, kit: InternalAuthKit, case: str) -> None:
    path = f"{slug(client)}/diagnostics/whoami"
    good = kit.headers(SERVICE)[HEADER]
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": SERVICE,
        "typ": "internal",
        "sub": "1",
        "email": "e@x.io",
        "username": "u",
        "adm": True,
        "rid": None,
        "iat": now,
        "exp": now + 60,
    }
    token = {
        "missing": None,
        "garbage": "not-a-token",
        "other_key": InternalAuthKit().headers(SERVICE)[HEADER],
        "wrong_audience": kit.headers("some-other-service")[HEADER],
        "expired": jwt.encode(
            {**claims, "iat": now - 600, "exp": now - 300}, load_private_key(kit.private_key), algorithm="EdDSA"
        ),
        "alg_none": jwt.encode(claims, None, algorithm="none"),
        "tampered": tamper(good),
        "hs256_with_public_key": jwt.encode(claims, kit.public_key, algorithm="HS256"),
    }[case]
    headers = {} if token is None else {HEADER: token}
    r = client.get(path, headers=headers)
    assert r.status_code == 401, (case, r.text)
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["message"] and r.json()["detail"]


def test_metrics_are_open_and_labelled_by_route_template(client: TestClient, kit: InternalAuthKit) -> None:
    assert client.get(f"{slug(client)}/diagnostics/whoami", headers=kit.headers(SERVICE)).status_code == 200
    client.get(f"{slug(client)}/no-such-route/12345", headers=kit.headers(SERVICE))
    r = client.get("/metrics")  # open like the probes; nginx never routes it (tests/e2e/test_observability.py)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert f'route="{slug(client)}/diagnostics/whoami"' in r.text
    assert 'route="unmatched"' in r.text and "/no-such-route/12345" not in r.text
    assert "/metrics" not in client.app.openapi()["paths"]


def test_every_route_but_probes_requires_internal_auth(client: TestClient) -> None:
    for path in client.app.openapi()["paths"]:
        if path in ("/health", "/ready") or "{" in path:
            continue
        for method in ("get", "post"):
            r = client.request(method, path)
            assert r.status_code == 401, (method, path, r.status_code)


def test_errors_are_json_with_message(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.get(f"{slug(client)}/no-such-route", headers=kit.headers(SERVICE))
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found", "message": "Not Found"}
    r = client.get(f"{slug(client)}/diagnostics/stream?count=0", headers=kit.headers(SERVICE))
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list) and "count" in r.json()["message"]


def test_diagnostic_stream_is_contract_sse(client: TestClient, kit: InternalAuthKit) -> None:
    with client.stream(
        "GET", f"{slug(client)}/diagnostics/stream?count=3&interval_ms=0", headers=kit.headers(SERVICE)
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        raw = b"".join(r.iter_bytes()).decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: {") and "\n" not in e for e in events)
    assert [e.count('"status":"streaming"') for e in events] == [1, 1, 1, 0]
    assert '"status":"complete"' in events[-1]


def test_tokens_are_per_service(kit: InternalAuthKit) -> None:
    # A token minted for one audience must not verify at another (no lateral use).
    signer = InternalSigner(kit.private_key)
    token = signer.sign("voice-service", user_id=1, email="a@b.c", username="a")
    from harvis_common.internal_auth import InternalAuthError, InternalVerifier

    with pytest.raises(InternalAuthError):
        InternalVerifier(kit.public_key, "mcp-service").verify(token)


def test_every_route_falls_under_the_manifest(client: TestClient) -> None:
    # The gateway routes by this file: a route outside its prefixes is unreachable through
    # :9000, and a long route missing from it gets a 60 s read timeout (a slow model's 504).
    manifest = load_manifest(MICRO / SERVICE / MANIFEST_FILE)
    assert manifest.service == SERVICE
    assert manifest_problems(client.app, manifest) == []
