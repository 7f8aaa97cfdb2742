"""Request and response bodies of the auth routes, with their validation rules."""

from __future__ import annotations

import re
from typing import Annotated, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .passwords import MAX_LENGTH, password_problem

USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,32}")  # ASCII only, as the database CHECK
MAX_EMAIL_LENGTH = 320
# Login accepts any string up to this: a long wrong password is just wrong (401),
# while megabytes of "password" are refused before anything hashes them.
MAX_LOGIN_PASSWORD_LENGTH = 4 * MAX_LENGTH


def _policy_error(problem: str) -> PydanticCustomError:
    # A custom error keeps the message as written (no "Value error, " prefix),
    # and FastAPI's 422 shows it to the user as `message`.
    return PydanticCustomError("password_policy", problem)


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: Annotated[str, Field(max_length=64, description="3-32 characters: letters, digits, `_`, `.`, `-`")]
    email: Annotated[str, Field(min_length=3, max_length=MAX_EMAIL_LENGTH)]
    password: Annotated[str, Field(max_length=MAX_LOGIN_PASSWORD_LENGTH)]

    @field_validator("username")
    @classmethod
    def _valid_username(cls, value: str) -> str:
        if not USERNAME_RE.fullmatch(value):
            raise PydanticCustomError("username", "Username must be 3-32 characters: letters, digits, _ . or -")
        return value

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        try:
            info = validate_email(value.strip(), check_deliverability=False)
        except EmailNotValidError as exc:
            raise PydanticCustomError("email", "Invalid email address: {reason}", {"reason": str(exc)}) from exc
        return info.normalized.lower()

    @field_validator("password")
    @classmethod
    def _strong_password(cls, value: str) -> str:
        problem = password_problem(value)
        if problem:
            raise _policy_error(problem)
        return value

    @model_validator(mode="after")
    def _not_the_identity(self) -> Self:
        problem = password_problem(self.password, username=self.username, email=self.email)
        if problem:
            raise _policy_error(problem)
        return self


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: Annotated[str, Field(min_length=1, max_length=MAX_EMAIL_LENGTH)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_LOGIN_PASSWORD_LENGTH)]

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str) -> str:
        # The same normalisation as signup, so the stored address is found; an
        # invalid address is no 422 here, just an unknown user (401) — except one
        # the database cannot even look up.
        if "\x00" in value:
            raise PydanticCustomError("email", "Invalid email address: it contains a NUL character")
        try:
            return validate_email(value.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            return value.strip().lower()


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)


class MeResponse(BaseModel):
    id: int
    username: str
    email: str
    avatar: str | None


class LogoutResponse(BaseModel):
    status: str = "logged_out"
    revoked: bool
