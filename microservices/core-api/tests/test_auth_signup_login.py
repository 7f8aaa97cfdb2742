"""Signup, login, /me: the front end's contract, cookies, validation, enumeration."""

from __future__ import annotations

import httpx
import pytest
from conftest import PASSWORD, ClientFactory, ServiceFactory, bearer, new_user, signup

from core_api.auth.context import AuthUser
from core_api.auth.service import AuthService

pytestmark = pytest.mark.asyncio


def cookie_attrs(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """(value, {attribute: value}) of the access_token Set-Cookie header."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("access_token=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    first, *attrs = [p.strip() for p in headers[0].split(";")]
    value = first.partition("=")[2]
    parsed = {}
    for attr in attrs:
        name, _, val = attr.partition("=")
        parsed[name.lower()] = val
    return value, parsed


async def test_signup_logs_in_with_cookie(client: httpx.AsyncClient, service: AuthService) -> None:
    user = new_user()
    response = await client.post("/api/auth/signup", json=user)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "bearer"
    value, attrs = cookie_attrs(response)
    assert value == body["access_token"]
    assert "httponly" in attrs
    assert attrs["samesite"].lower() == "lax"
    assert attrs["path"] == "/"
    assert attrs["max-age"] == str(60 * 60) == str(service.token_ttl_s)
    assert "secure" not in attrs
    # The token proves the new user, with the claims the gateway uses.
    proven = await service.authenticate(body["access_token"])
    assert isinstance(proven, AuthUser)
    assert (proven.username, proven.email, proven.is_admin) == (user["username"], user["email"], False)


async def test_cookie_is_secure_when_configured(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    client = await make_client(await make_service(cookie_secure=True))
    response = await client.post("/api/auth/signup", json=new_user())
    _, attrs = cookie_attrs(response)
    assert "secure" in attrs


async def test_login_cookie_and_bearer_both_work_for_me(client: httpx.AsyncClient) -> None:
    user, _ = await signup(client)
    response = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert response.json()["token_type"] == "bearer"
    value, attrs = cookie_attrs(response)
    assert value == token and "httponly" in attrs and attrs["max-age"] == "3600"
    client.cookies.clear()

    by_cookie = await client.get("/api/auth/me", headers={"Cookie": f"access_token={token}"})
    by_bearer = await client.get("/api/auth/me", headers=bearer(token))
    assert by_cookie.status_code == by_bearer.status_code == 200
    me = by_bearer.json()
    assert me == by_cookie.json()
    assert set(me) == {"id", "username", "email", "avatar"}
    assert isinstance(me["id"], int) and me["id"] > 0
    assert (me["username"], me["email"], me["avatar"]) == (user["username"], user["email"], None)


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient) -> None:
    user, _ = await signup(client)
    response = await client.post(
        "/api/auth/login", json={"email": "  " + user["email"].upper() + " ", "password": user["password"]}
    )
    assert response.status_code == 200


async def test_signup_stores_email_lowercased(client: httpx.AsyncClient) -> None:
    user = new_user()
    user["email"] = user["email"].replace("user.", "Mixed.Case.")
    _, token = await signup(client, user)
    me = (await client.get("/api/auth/me", headers=bearer(token))).json()
    assert me["email"] == user["email"].lower()


async def test_me_without_or_with_bad_token_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("not-a-jwt"), {"Cookie": "access_token=garbage"}, {"Authorization": "Basic abc"}):
        response = await client.get("/api/auth/me", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "detail": "Could not validate credentials",
            "message": "Could not validate credentials",
        }
        assert response.headers["www-authenticate"] == "Bearer"


async def test_duplicate_signup_is_409_case_insensitively(client: httpx.AsyncClient) -> None:
    user, _ = await signup(client)
    expected = {
        "detail": "User with this email or username already exists",
        "message": "User with this email or username already exists",
    }
    same_email = {**new_user(), "email": user["email"].upper()}
    same_name = {**new_user(), "username": user["username"].upper()}
    for attempt in (user, same_email, same_name):
        response = await client.post("/api/auth/signup", json=attempt)
        assert response.status_code == 409, attempt
        assert response.json() == expected
        assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("password", "Ab1!xyz", "at least 8"),
        ("password", "password123", "too common"),
        ("password", "PASSWORD123", "too common"),
        ("password", "P@ssw0rd2024", "too common"),
        ("password", "qwertyuiop", "too common"),
        ("password", "x" * 129, "at most 128"),
        ("password", " " * 12, "only spaces"),
        ("email", "not-an-email", "email"),
        ("email", "a@b", "email"),
        ("username", "ab", "username"),
        ("username", "has space", "username"),
        ("username", "x" * 33, "username"),
        ("username", "bob\n", "username"),
    ],
)
async def test_signup_rejects_invalid_input(client: httpx.AsyncClient, field: str, value: str, reason: str) -> None:
    user = {**new_user(), field: value}
    response = await client.post("/api/auth/signup", json=user)
    assert response.status_code == 422, response.text
    body = response.json()
    assert isinstance(body["detail"], list)
    assert reason in body["message"].lower() or reason in str(body["detail"]).lower()
    assert "set-cookie" not in response.headers
    if field == "password":
        assert value not in response.text or value.strip() == ""  # the password is never echoed


async def test_password_equal_to_username_or_email_is_rejected(client: httpx.AsyncClient) -> None:
    user = new_user()
    for password in (user["username"], user["username"].upper(), user["email"]):
        response = await client.post("/api/auth/signup", json={**user, "password": password})
        assert response.status_code == 422
        assert "same as your username or email" in response.json()["message"]


async def test_password_of_128_characters_is_accepted(client: httpx.AsyncClient) -> None:
    user, _ = await signup(client, new_user("Zq9-" * 32))
    response = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "password",
    [
        "long-ascii-password-" * 5,  # 100 bytes: past bcrypt's 72
        "🔐🦄密码パスワード😀🎉",  # multibyte: 4-byte emoji and CJK
        "пароль-очень-надёжный-ключ",  # Cyrillic, 2 bytes a character
    ],
)
async def test_long_and_multibyte_passwords_round_trip(client: httpx.AsyncClient, password: str) -> None:
    user, _ = await signup(client, new_user(password))
    ok = await client.post("/api/auth/login", json={"email": user["email"], "password": password})
    assert ok.status_code == 200
    wrong = await client.post("/api/auth/login", json={"email": user["email"], "password": password[:-1]})
    assert wrong.status_code == 401


async def test_passwords_differing_only_after_byte_72_are_different(client: httpx.AsyncClient) -> None:
    prefix = "k" * 36 + "-shared-prefix-of-seventy-two-bytes!"
    assert len(prefix.encode()) == 72
    user, _ = await signup(client, new_user(prefix + "-tail-one"))
    other = await client.post("/api/auth/login", json={"email": user["email"], "password": prefix + "-tail-two"})
    assert other.status_code == 401
    only_prefix = await client.post("/api/auth/login", json={"email": user["email"], "password": prefix})
    assert only_prefix.status_code == 401
    right = await client.post("/api/auth/login", json={"email": user["email"], "password": prefix + "-tail-one"})
    assert right.status_code == 200


async def test_unknown_email_and_wrong_password_look_the_same(client: httpx.AsyncClient, service: AuthService) -> None:
    user, _ = await signup(client)
    before = service.passwords.verifications
    wrong_password = await client.post("/api/auth/login", json={"email": user["email"], "password": "Nope-nope-42"})
    unknown_email = await client.post(
        "/api/auth/login", json={"email": "nobody-" + user["email"], "password": user["password"]}
    )
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "set-cookie" not in response.headers
    assert wrong_password.content == unknown_email.content
    assert wrong_password.json() == {"detail": "Incorrect email or password", "message": "Incorrect email or password"}
    # Both paths ran one bcrypt check (the unknown email against the dummy hash),
    # and the dummy hash has the configured cost, so they take the same time.
    assert service.passwords.verifications == before + 2
    assert service.passwords.dummy_hash is not None
    assert service.passwords.dummy_hash.startswith(b"$2b$04$")


async def test_invalid_email_at_login_is_just_a_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", json={"email": "not an email", "password": PASSWORD})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"email": "a@example.com", "password": ', "application/json"),  # truncated
        (b"not json at all", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"a string"', "application/json"),
        (b"null", "application/json"),
        (b'{"email": 42, "password": ["x"]}', "application/json"),
        (b'{"email": "a@example.com"}', "application/json"),
        (b"email=a&password=b", "application/x-www-form-urlencoded"),
    ],
)
async def test_bad_login_bodies_are_422_json(client: httpx.AsyncClient, content: bytes, content_type: str) -> None:
    response = await client.post("/api/auth/login", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    body = response.json()
    assert "detail" in body and isinstance(body["message"], str) and body["message"]


async def test_wrong_types_at_signup_are_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/signup", json={"username": 123, "email": True, "password": None})
    assert response.status_code == 422
    locs = {tuple(err["loc"]) for err in response.json()["detail"]}
    assert {("body", "username"), ("body", "email"), ("body", "password")} <= locs


async def test_non_utf8_body_is_4xx_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login",
        content=b'{"email": "\xff\xfe", "password": "x"}',
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


async def test_huge_bodies_are_refused_with_413(client: httpx.AsyncClient) -> None:
    huge = {"email": "a@example.com", "password": "x" * 200_000}
    response = await client.post("/api/auth/login", json=huge)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large", "message": "Request body too large"}

    async def chunks():  # no Content-Length: the limit holds on the bytes received
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    streamed = await client.post("/api/auth/signup", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


async def test_long_login_password_is_422_not_a_hash(client: httpx.AsyncClient, service: AuthService) -> None:
    before = service.passwords.verifications
    response = await client.post("/api/auth/login", json={"email": "a@example.com", "password": "x" * 600})
    assert response.status_code == 422
    assert service.passwords.verifications == before
