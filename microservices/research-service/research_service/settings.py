"""research-service settings (environment variables, see .env.example)."""

from harvis_common.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "research-service"
