"""mcp-service settings (environment variables, see .env.example)."""

from pydantic import Field

from harvis_common.config import ServiceSettings, checkout_state_dir

# Natively the workspaces live in the checkout's git-ignored state directory (like vibe-coding's).
_DEFAULT_WORKSPACES = str(checkout_state_dir(__file__, "mcp-workspaces"))


class Settings(ServiceSettings):
    service_name: str = "mcp-service"

    # ---- MCP transport
    # Host header values the MCP endpoint accepts (DNS-rebinding protection). The gateway
    # sends each service its own host:port as Host; `name:*` allows any port.
    mcp_allowed_hosts: str = "127.0.0.1:*,localhost:*,[::1]:*,mcp-service:*"
    # Origin header values accepted on the MCP endpoint when a client sends one.
    mcp_allowed_origins: str = "http://127.0.0.1:*,http://localhost:*"

    # ---- governance
    # Per-user workspace roots for the OS tools: <MCP_WORKSPACE_DIR>/<user id>/.
    mcp_workspace_dir: str = _DEFAULT_WORKSPACES
    # Comma-separated tool categories to switch off: network, notification, files, system.
    mcp_disabled_categories: str = ""
    # Default and maximum time one tool call may take, in seconds.
    mcp_tool_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # Largest tool result (JSON) returned, in bytes; bigger results are refused.
    mcp_max_output_bytes: int = Field(default=1_000_000, ge=1024)
    # Largest file the file tools read or write, in bytes.
    mcp_max_file_bytes: int = Field(default=10_000_000, ge=1024)
    # Archive extraction caps: total uncompressed bytes and number of members.
    mcp_archive_max_bytes: int = Field(default=100_000_000, ge=1024)
    mcp_archive_max_members: int = Field(default=10_000, ge=1)

    # ---- per-user quotas: sliding windows (a use frees its slot one window later), kept in
    # Redis when REDIS_URL is set (shared by replicas), else in this process. Exceeded: 429.
    # Email recipients per user per hour (a message to three people counts three).
    mcp_emails_per_hour: int = Field(default=20, ge=1)
    # SMS per user per day.
    mcp_sms_per_day: int = Field(default=10, ge=1)
    # Webhook deliveries per user per hour.
    mcp_webhooks_per_hour: int = Field(default=60, ge=1)
    # Network probes per user per minute: ping, ssl_check and http_check count one,
    # tcp_port_check one per port.
    mcp_network_probes_per_minute: int = Field(default=30, ge=1)
    # Redis for the quotas; empty: in-process (one replica only).
    redis_url: str = ""
    # Prefix of mcp-service's Redis keys.
    mcp_redis_prefix: str = "harvis:mcp:"

    # ---- network tools
    # Hosts and networks the network and webhook tools may reach beyond the public internet
    # ("127.0.0.1/32, intranet.example"); empty: public addresses only.
    mcp_ssrf_allowlist: str = ""
    # DNS servers the DNS tools use ("ip" or "ip:port", comma-separated); empty: the system's.
    # A call may pick one of these by its `nameserver` argument, never another.
    mcp_dns_nameservers: str = ""
    # Where whois lookups start (referrals are followed from there).
    mcp_whois_server: str = "whois.iana.org"
    # TCP port of whois servers (43; tests point it at a local server).
    mcp_whois_port: int = Field(default=43, ge=1, le=65535)

    # ---- notification tools
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # none, starttls or tls (implicit TLS, usually port 465).
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_timeout_s: float = Field(default=20.0, gt=0, le=120)
    # HMAC-SHA256 key signing the webhook tool's requests (X-Harvis-Signature).
    webhook_secret: str = ""
    # Twilio-compatible SMS API.
    twilio_api_base: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
