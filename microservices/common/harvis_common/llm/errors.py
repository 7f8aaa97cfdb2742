"""What an LLM call raises: `LLMError` and its kinds, each with the HTTP status a route
should answer with, and how a backend's error answer maps to one of them."""

from __future__ import annotations

import json


class LLMError(Exception):
    """The backend failed; `str(exc)` is a message fit to show a user."""

    kind = "error"
    status = 502  # the HTTP status a route should answer with

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LLMUnavailable(LLMError):
    """The backend is not reachable (down, wrong URL)."""

    kind = "unavailable"
    status = 503


class LLMAuthError(LLMError):
    """The backend refused the API key it was given (401/403)."""

    kind = "auth"


class ModelNotFound(LLMError):
    """The backend does not have the requested model."""

    kind = "model_not_found"
    status = 404


class LLMInputTooLong(LLMError):
    """The request doesn't fit the model's context window: the caller's input is too long."""

    kind = "input_too_long"
    status = 413


class LLMTimeout(LLMError):
    """The backend accepted the request but stopped answering."""

    kind = "timeout"
    status = 504


def error_for_answer(provider: str, status: int, reason: str | None, text: str, model: str | None) -> LLMError:
    """The error for a backend's answer with HTTP status `status` >= 400 and body `text`
    (a request about `model`, when there is one)."""
    detail = text
    try:
        body = json.loads(text)
        err = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(err, dict):
            err = err.get("message") or json.dumps(err)
        detail = str(err)
    except (ValueError, AttributeError):
        pass
    low = detail.lower()
    if status in (400, 413) and ("context_length_exceeded" in text or "maximum context length" in low):
        return LLMInputTooLong(f"The message is too long for the model: {detail}")
    if status in (401, 403):
        return LLMAuthError(f"The {provider} backend refused the API key ({status}): {detail}")
    if model and (status == 404 or ("model" in low and ("not found" in low or "does not exist" in low))):
        return ModelNotFound(f"Model '{model}' is not available on the {provider} backend: {detail}")
    if status in (502, 503):
        return LLMUnavailable(f"The {provider} backend is unavailable ({status}): {detail}")
    return LLMError(f"The {provider} backend answered {status}: {detail or reason}")
