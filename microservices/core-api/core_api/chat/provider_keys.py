"""Which backend answers a user's chat: their own provider key, or the server's.

A stored key is used only where the server's chat can use it: with an OpenAI-compatible
backend (`LLM_PROVIDER=openai`) a user's active `openai` key replaces `OPENAI_API_KEY` for
that user's requests (chat, vision chat, their model list), sent to their own `api_url` when
they gave one, else to the server's `OPENAI_API_BASE`. Ollama has no keys, so with it no key
is usable. Keys the server can't use are refused when stored (`unusable_reason`).

A user's `api_url` is a URL a user makes the server call, so it passes the one SSRF policy
(`harvis_common.ssrf`) when stored and on every use: each request and redirect hop is
checked (`check_url`: scheme, IP literals, every resolved address) and the connection goes
through `VettedResolver`, which connects only to vetted addresses, so DNS changed after the
key was stored (rebinding) gets nowhere. The server's own `OPENAI_API_BASE` is the
operator's and is not vetted.

A key the provider refuses (401/403) is the user's error event naming the stored key: there
is no silent fall-back to the server's key. The key is redacted from every error message.
Clients are made per request and closed after it, so a deleted or switched-off key stops
being used at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography.exceptions import InvalidTag

from harvis_common.http_client import VettedResolver
from harvis_common.llm import ChatChunk, LLMAuthError, LLMError, LLMUnavailable, ModelInfo, OpenAIClient
from harvis_common.ssrf import SSRFBlocked, SSRFPolicy, check_url

from ..store import api_keys
from .backend import LLMBackend

if TYPE_CHECKING:
    from aiohttp.abc import ResolveResult

    from .key_cipher import KeyCipher

# The provider name whose keys an OpenAI-compatible chat backend uses.
CHAT_KEY_PROVIDER = "openai"
SETTINGS_HINT = "Update or delete it under Settings → API keys"


class StoredKeyProblem(LLMError):
    """The user's stored key or URL can't be used; the message names it and says what to do."""

    kind = "stored_key"
    status = 502


class StoredKeyRejected(StoredKeyProblem):
    kind = "stored_key_rejected"


class ProviderURLRefused(StoredKeyProblem):
    kind = "stored_url_refused"


def unusable_reason(settings: Any, provider: str) -> str | None:
    """Why this server's chat would not use a key for `provider` (None: it would)."""
    if settings.llm_provider != "openai":
        return (
            f"This server's chat runs on Ollama, which uses no API keys: a {provider} key stored here "
            "would never be used"
        )
    if provider != CHAT_KEY_PROVIDER:
        return (
            f"This server's chat doesn't use {provider} keys: it talks to an OpenAI-compatible server, "
            f"so only a '{CHAT_KEY_PROVIDER}' key (with an optional api_url) is used"
        )
    return None


def key_status(settings: Any, provider: str, is_active: bool) -> tuple[bool, str | None]:
    """(in_use, why not) for a stored row, as the list shows it."""
    reason = unusable_reason(settings, provider)
    if reason is None and not is_active:
        reason = "This key is inactive (is_active is false): your chats use the server's own backend"
    return reason is None, reason


def with_status(settings: Any, row: dict[str, Any]) -> dict[str, Any]:
    """A stored key (`store.api_keys.key_dict`) as `/api/user/api-keys` lists it."""
    # `in_use`/`in_use_reason` are ours (the front end reads only the fields above them): a row
    # stored before the operator changed the chat backend, or switched off, says it isn't used.
    in_use, reason = key_status(settings, row["provider_name"], row["is_active"])
    return {**row, "in_use": in_use, "in_use_reason": reason}


def url_policy(state: Any) -> SSRFPolicy:
    return getattr(state, "provider_url_policy", None) or SSRFPolicy()


async def vet_url(url: str, policy: SSRFPolicy) -> None:
    """Raises SSRFBlocked when the policy refuses `url` (DNS is resolved and every address checked)."""
    await check_url(url, policy)


# ---------------------------------------------------------------- the vetting HTTP session


class _Resolver(VettedResolver):
    """`VettedResolver`, its refusal told as the stored URL's problem."""

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        try:
            return await super().resolve(host, port, family)
        except SSRFBlocked as exc:
            raise ProviderURLRefused(f"The api_url you stored for openai is refused: {exc}") from exc


def _vetting_middleware(policy: SSRFPolicy) -> Any:
    async def vet(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        # Every hop, redirects included: IP literals never reach the resolver.
        try:
            await check_url(str(request.url), policy)
        except (SSRFBlocked, ValueError, OSError) as exc:
            raise ProviderURLRefused(f"The api_url you stored for openai is refused: {exc}") from exc
        return await handler(request)

    return vet


def vetting_session(policy: SSRFPolicy) -> aiohttp.ClientSession:
    """An aiohttp session that only reaches what `policy` allows (as `SafeHTTPClient`'s, but
    streaming): no proxies from the environment, no cookies kept."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=_Resolver(policy), use_dns_cache=False, limit=8),
        middlewares=(_vetting_middleware(policy),),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


# ---------------------------------------------------------------- the user's client


class UserOpenAIClient(OpenAIClient):
    """An OpenAI client with a user's key: a refused key is `StoredKeyRejected`, and the key
    never appears in an error message (providers echo it)."""

    def __init__(
        self, base_url: str, *, api_key: str, vetting: aiohttp.ClientSession | None = None, **kwargs: Any
    ) -> None:
        super().__init__(base_url, api_key=api_key, session=vetting, **kwargs)
        self.own_url = vetting is not None
        self._vetting = vetting  # made for this client alone: closed with it

    def _http(self) -> aiohttp.ClientSession:
        if self._vetting is None:
            return super()._http()
        if self._vetting.closed:  # never fall back to an unvetted session
            raise LLMUnavailable("This chat's connection to your api_url is already closed")
        return self._vetting

    async def close(self) -> None:
        await super().close()
        if self._vetting is not None and not self._vetting.closed:
            await self._vetting.close()

    def _translate(self, exc: LLMError) -> LLMError:
        detail = exc.message.replace(self.api_key or "\0", "***")
        if isinstance(exc, LLMAuthError):
            where = "the server at your api_url" if self.own_url else "this server's OpenAI-compatible backend"
            return StoredKeyRejected(
                f"The API key you stored for openai was refused by {where} ({detail}). {SETTINGS_HINT}: "
                "your chats don't fall back to the server's key while it is stored."
            )
        exc.message = detail
        exc.args = (detail,)
        return exc

    async def list_models(self) -> list[ModelInfo]:
        try:
            return await super().list_models()
        except LLMError as exc:
            raise self._translate(exc) from None

    async def chat_stream(
        self,
        messages: Sequence[dict[str, Any]],
        model: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[ChatChunk]:
        stream = super().chat_stream(messages, model, temperature=temperature, max_tokens=max_tokens, options=options)
        try:
            async for chunk in stream:
                yield chunk
        except LLMError as exc:
            raise self._translate(exc) from None
        finally:
            await stream.aclose()  # closes the HTTP response at once when the caller stops early


async def active_key(pool: Any, cipher: KeyCipher | None, user_id: int, provider: str) -> tuple[str, str | None] | None:
    """(key, api_url) of the user's active entry for `provider`, or None."""
    stored = await api_keys.active(pool, user_id, provider)
    if stored is None:
        return None
    blob, url = stored
    if cipher is None:
        raise StoredKeyProblem(
            f"Your stored {provider} key can't be read: API key storage is not configured on this server "
            f"(API_KEY_ENCRYPTION_KEY); delete it under Settings → API keys to use the server's backend"
        )
    try:
        return cipher.decrypt(user_id, provider, blob), url
    except (InvalidTag, ValueError) as exc:
        raise StoredKeyProblem(
            f"Your stored {provider} key can't be read (the server's encryption key changed). {SETTINGS_HINT}."
        ) from exc


async def backend_for(state: Any, user_id: int) -> tuple[LLMBackend, bool]:
    """The backend for this user's chat, and whether it is theirs (then the caller closes it)."""
    server: LLMBackend = state.llm
    settings = state.chat_settings
    if unusable_reason(settings, CHAT_KEY_PROVIDER) is not None:
        return server, False
    stored = await active_key(state.pool, state.key_cipher, user_id, CHAT_KEY_PROVIDER)
    if stored is None:
        return server, False
    key, url = stored
    timeouts = {
        "connect_timeout_s": settings.llm_connect_timeout_s,
        "read_timeout_s": settings.llm_read_timeout_s,
        "request_timeout_s": settings.llm_request_timeout_s,
    }
    if url:
        client = UserOpenAIClient(url, api_key=key, vetting=vetting_session(url_policy(state)), **timeouts)
    else:
        client = UserOpenAIClient(settings.llm_base_url, api_key=key, **timeouts)
    return LLMBackend(settings, client), True
