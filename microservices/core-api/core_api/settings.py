"""core-api settings (environment variables, documented in .env.example)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from harvis_common.config import LLMSettings, ServiceSettings

SERVICE_URL_SETTINGS = (
    "research_service_url",
    "voice_service_url",
    "browser_service_url",
    "mcp_service_url",
    "n8n_integration_url",
    "vibe_coding_url",
)


def replica_urls(value: str) -> list[str]:
    """A service URL setting's base URLs, one per replica, in ordinal order (one for most)."""
    urls = [url.strip() for url in value.split(",")]
    if not all(urls):
        raise ValueError(f"an empty URL in {value!r}: give one base URL per replica, comma-separated")
    return urls


class DatabaseSettings(BaseSettings):
    database_url: str = Field(default="", description="postgresql://… (asyncpg DSN)")
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)


class ArtifactSettings(BaseSettings):
    """Artifacts' storage and rendering: read by core-api and by the artifact-renderer."""

    # Each user's artifacts (files and specs) together; past it new ones are refused (413).
    artifact_storage_quota_mb: int = Field(default=200, ge=1, le=100_000)
    # Artifacts are deleted this many days after they were made (0: kept until deleted).
    artifact_ttl_days: int = Field(default=30, ge=0, le=3650)
    # Renders at once per process (threads); a render longer than the timeout is failed. 0 in
    # core-api: it only queues, and the artifact-renderer process (artifacts/renderer.py) renders.
    artifact_render_workers: int = Field(default=2, ge=0, le=16)
    artifact_render_timeout_s: float = Field(default=60.0, gt=0, le=600)


class Settings(ServiceSettings, LLMSettings, DatabaseSettings, ArtifactSettings):
    service_name: str = "core-api"

    # User tokens (HS256, pinned). No default: a missing secret must stop the service.
    jwt_secret: str = ""
    jwt_ttl_minutes: int = Field(default=60 * 24, ge=1, le=60 * 24 * 30)
    cookie_secure: bool = False  # set true behind HTTPS
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    # Peers whose X-Real-IP is believed (our nginx); anything else is the client itself.
    trusted_proxy_cidrs: str = "127.0.0.0/8,::1/128"

    # Ed25519 private key (base64url, 32 bytes) that signs X-Internal-Auth.
    internal_auth_private_key: str = ""
    internal_auth_ttl_s: int = Field(default=60, ge=5, le=600)

    redis_url: str = ""  # rate limits and revocation fan-out use Redis when set
    redis_key_prefix: str = "harvis:auth:"
    login_rate_per_ip: int = Field(default=20, ge=1)  # failed logins per window
    login_rate_per_account: int = Field(default=5, ge=1)
    login_rate_window_s: int = Field(default=300, ge=1)
    revocation_sync_s: float = Field(default=2.0, gt=0)
    # Signups per client address within the window: each one costs a bcrypt hash and an account.
    signup_rate_per_ip: int = Field(default=20, ge=1)
    signup_rate_window_s: int = Field(default=3600, ge=1)
    # bcrypt jobs that may wait for a hashing thread; past this, logins and signups are
    # answered 503 + Retry-After at once instead of queueing without end.
    bcrypt_queue_max: int = Field(default=32, ge=0)
    # How long a user's state (exists, active, admin) is trusted before it is read again:
    # a disabled or deleted user's tokens stop working within this many seconds.
    user_state_cache_s: float = Field(default=5.0, gt=0, le=300)
    # Comma-separated emails made administrators at signup or login (how the first admin is
    # made; `python -m core_api.admin grant|revoke EMAIL` manages the role afterwards).
    admin_emails: str = ""

    # The public /api/health answer is reused for this long (a flood of it is no flood on the services).
    health_cache_s: float = Field(default=5.0, ge=0, le=300)
    # Origins (scheme://host[:port], comma-separated) besides the request's own host from which a
    # cookie-authenticated WebSocket may be opened (e.g. a front end served on another port);
    # checked when the gateway is built, so a typo stops the service.
    websocket_allowed_origins: str = ""

    # Where each service lives; the gateway's routing table points at these. Each may list
    # several base URLs, comma-separated, one per replica: the position is the replica's ordinal
    # (what a session id names: harvis_common.replicas); see replica_urls.
    research_service_url: str = "http://127.0.0.1:8001"
    voice_service_url: str = "http://127.0.0.1:8002"
    browser_service_url: str = "http://127.0.0.1:8003"
    mcp_service_url: str = "http://127.0.0.1:8004"
    n8n_integration_url: str = "http://127.0.0.1:8005"
    vibe_coding_url: str = "http://127.0.0.1:8006"
    # Where each service's manifest.toml (its prefixes and long routes) is read from:
    # <dir>/<service>/manifest.toml. Empty: the checkout's microservices/ directory.
    service_manifests_path: str = ""

    gateway_connect_timeout_s: float = Field(default=0.5, gt=0)
    gateway_read_timeout_s: float = Field(default=60.0, gt=0)
    gateway_stream_timeout_s: float = Field(default=900.0, gt=0)  # SSE, long research, uploads
    gateway_max_connections: int = Field(default=256, ge=1)

    # The LLM backend itself (provider, URLs, default model, timeouts) comes from LLMSettings.
    vision_model: str = ""  # for /api/vision-chat when the requested model is unknown
    chat_system_prompt: str = "You are Harvis, a helpful AI assistant."
    chat_history_limit: int = Field(default=40, ge=0, le=1000)  # earlier messages sent to the model
    chat_max_tokens: int = Field(default=0, ge=0)  # longest answer in tokens; 0: the backend's own limit
    sse_heartbeat_s: float = Field(default=10.0, gt=0)
    # Per-user quota: chat turns (/api/chat and /api/vision-chat together) in any hour. Over it:
    # a JSON 429 + Retry-After before any stream starts. Counted in Redis when REDIS_URL is set.
    chat_turns_per_hour: int = Field(default=120, ge=1)
    # AES-256-GCM key (base64url, 32 bytes) for users' provider API keys at rest; never the JWT secret.
    api_key_encryption_key: str = ""
    # How long after issue a service may send back a user's X-Internal-Auth token to core-api's
    # internal API (/internal/history/…, /internal/token): mic-chat and research outlive its 60 s TTL.
    internal_history_token_max_age_s: int = Field(default=900, ge=10, le=3600)

    # Grounded chat (chat/knowledge.py): research-service's knowledge base searched as the user when
    # the request's `use_knowledge_base` (or, without it, the user's preference) says so. A hit is
    # relevant (its excerpt goes in the prompt) at this vector similarity or more (or holding half
    # of the question's rarer terms); the search gets CHAT_KB_TIMEOUT_S before the turn goes on
    # without it; at most CHAT_KB_MAX_EXCERPTS excerpts are asked for.
    chat_kb_min_similarity: float = Field(default=0.35, ge=-1.0, le=1.0)
    chat_kb_timeout_s: float = Field(default=5.0, gt=0, le=60)
    chat_kb_max_excerpts: int = Field(default=5, ge=1, le=20)

    # Artifacts (core_api/artifacts/). Ask the model for an `artifact` block when a file is wanted
    # (the instructions follow CHAT_SYSTEM_PROMPT) and make the artifact from it.
    chat_artifacts: bool = True

    # The audit trail (core_api/audit.py, GET /api/admin/audit): events older than this are deleted.
    audit_retention_days: int = Field(default=90, ge=1, le=3650)

    @property
    def admin_email_set(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.admin_emails.split(",") if e.strip())

    @field_validator(*SERVICE_URL_SETTINGS)
    @classmethod
    def _replica_list(cls, value: str) -> str:
        replica_urls(value)  # an empty entry (a stray comma) would shift every ordinal after it
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _secret_strength(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        return value
