"""Request and response bodies of core-api's routes, with their validation rules, by area:
auth, admin, chat, chat history, models, API keys, the internal API.

Text that PostgreSQL stores is `PgText` / `JsonObject` (`pg_input`): refused at validation
(422), not by the database (a 500).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..auth.passwords import MAX_LENGTH, password_problem
from ..pg_input import JsonObject, PgText
from ..store.chat import TITLE_MAX, NewMessage

# ---------------------------------------------------------------- auth

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


# ---------------------------------------------------------------- admin


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: bool | None = None
    is_admin: bool | None = None


# ---------------------------------------------------------------- chat

MAX_MESSAGE_CHARS = 100_000
MAX_IMAGES = 8
MAX_IMAGE_B64_CHARS = 20 * 1024 * 1024


class HistoryItem(BaseModel):
    # Lenient: the front end's history may carry other roles or null content; only
    # user/assistant turns are sent to the model.
    role: str = Field(max_length=32)
    content: str | None = Field(default="", max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    message: PgText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    history: list[HistoryItem] = Field(default_factory=list, max_length=500)
    model: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=64)
    attachments: list[Any] | None = None  # accepted, not used
    text_only: bool | None = None
    low_vram: bool | None = None
    tts_engine: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    # Ground the answer in the user's knowledge base (chat/knowledge.py); None: the user's
    # preference (GET/PUT /api/user/preferences) decides.
    use_knowledge_base: bool | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be empty")
        return value


class VisionChatRequest(ChatRequest):
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)
    message: PgText = Field(default="Describe this image.", max_length=MAX_MESSAGE_CHARS)

    @field_validator("images")
    @classmethod
    def _base64(cls, images: list[str]) -> list[str]:
        out = []
        for i, image in enumerate(images):
            raw = image.split(",", 1)[1] if image.startswith("data:") and "," in image else image
            raw = "".join(raw.split())
            if not raw or len(raw) > MAX_IMAGE_B64_CHARS:
                raise ValueError(f"image {i}: empty or larger than 15 MB")
            try:
                base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"image {i}: not valid base64") from exc
            out.append(raw)
        return out


# ---------------------------------------------------------------- chat history


class SessionCreate(BaseModel):
    title: PgText = Field(default="New Chat", min_length=1, max_length=TITLE_MAX)
    model_used: PgText | None = Field(default=None, max_length=200)


class TitleUpdate(BaseModel):
    title: PgText = Field(min_length=1, max_length=TITLE_MAX)


class MessageCreate(BaseModel):
    session_id: str = Field(max_length=64)
    role: Literal["user", "assistant", "system"]
    content: PgText = Field(max_length=100_000)
    reasoning: PgText | None = Field(default=None, max_length=100_000)
    model_used: PgText | None = Field(default=None, max_length=200)
    input_type: Literal["text", "voice", "screen"] = "text"
    metadata: JsonObject | None = None


# ---------------------------------------------------------------- models


class UnloadRequest(BaseModel):
    model_type: str = Field(default="all", max_length=200)


# ---------------------------------------------------------------- API keys

PROVIDER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PreferencesUpdate(BaseModel):
    """PUT /api/user/preferences: the preferences to change (the others stay)."""

    model_config = ConfigDict(extra="forbid")

    use_knowledge_base: bool | None = None


class ApiKeyCreate(BaseModel):
    provider_name: str = Field(min_length=1, max_length=64)
    api_key: PgText = Field(min_length=1, max_length=4096)
    api_url: PgText | None = Field(default=None, max_length=2048)
    is_active: bool = True

    @field_validator("provider_name")
    @classmethod
    def _provider(cls, value: str) -> str:
        value = value.strip().lower()
        if not PROVIDER_RE.match(value):
            raise ValueError("provider_name may contain letters, digits, '_', '.', '-' (1-64)")
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("api_url must be an http(s) URL")
        return value


# ---------------------------------------------------------------- the internal API (/internal/…)


class TokenRequest(BaseModel):
    audience: str = Field(min_length=1, max_length=100)


class AuditReport(BaseModel):
    """What a service did for the user (`POST /internal/audit`): no bodies, no secrets."""

    action: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")  # e.g. sandbox_run, n8n_execution
    target: str | None = Field(default=None, max_length=200)  # e.g. a workflow or session id
    outcome: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")


class MessageIn(BaseModel):
    content: PgText = Field(max_length=100_000)
    reasoning: PgText | None = Field(default=None, max_length=100_000)
    model_used: PgText | None = Field(default=None, max_length=200)
    input_type: Literal["text", "voice", "screen"] = "text"
    metadata: JsonObject | None = None

    def as_new(self, role: str) -> NewMessage:
        return NewMessage(role, self.content, self.reasoning, self.model_used, self.input_type, self.metadata)


class ExchangeIn(BaseModel):
    session_id: str | None = Field(default=None, max_length=64)
    title: PgText | None = Field(default=None, max_length=TITLE_MAX)
    user_message: MessageIn
    assistant_message: MessageIn | None = None
