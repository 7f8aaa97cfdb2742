"""mcp-service's per-user quotas on the tools that cost money, spam people or scan
networks: emails (per recipient), SMS, webhooks and network probes (per port).

The machinery — rolling windows, atomic in Redis or in process, the fallback while Redis
is down, the user-facing message — is `harvis_common.quotas`, shared by every service. A
tool takes its cost *before* the costly act and after its input was checked (a refused
address or URL costs nothing).
"""

from __future__ import annotations

from harvis_common.quotas import Quota, Quotas

from .settings import Settings


def quotas_from(settings: Settings) -> list[Quota]:
    return [
        Quota("emails", "emails", settings.mcp_emails_per_hour, 3600),
        Quota("sms", "SMS", settings.mcp_sms_per_day, 86_400),
        Quota("webhooks", "webhooks", settings.mcp_webhooks_per_hour, 3600),
        Quota("probes", "network probes", settings.mcp_network_probes_per_minute, 60),
    ]


def mcp_quotas(settings: Settings) -> Quotas:
    """`await quotas.take("sms", user_id)` before sending."""
    return Quotas.for_service(
        quotas_from(settings), redis_url=settings.redis_url, service_prefix=settings.mcp_redis_prefix
    )
