"""n8n-integration settings (environment variables, see .env.example)."""

from harvis_common.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "n8n-integration"
