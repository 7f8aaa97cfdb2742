"""browser-service settings (environment variables, see .env.example)."""

from pydantic import Field

from harvis_common.config import ReplicaSettings, ServiceSettings


class Settings(ServiceSettings, ReplicaSettings):
    service_name: str = "browser-service"

    # Hosts/networks the SSRF guard lets the browser reach although they are not public
    # ("127.0.0.2/32, intranet.example"); empty: public addresses only.
    browser_ssrf_allowlist: str = ""
    # Debian's chromium and chromium-driver.
    chromium_path: str = "/usr/bin/chromium"
    chromedriver_path: str = "/usr/bin/chromedriver"
    # Where each session's fresh profile is created (and wiped on close); empty: the system temp dir.
    browser_profile_dir: str = ""
    # Open browser sessions allowed in total and per user (429 beyond).
    browser_max_sessions: int = Field(default=4, ge=1, le=64)
    browser_max_sessions_per_user: int = Field(default=2, ge=1, le=64)
    # A session unused this long (seconds) is closed; also the upper bound of a per-session idle_timeout_s.
    browser_idle_timeout_s: int = Field(default=300, ge=1, le=86400)
    # Longest a navigation may take, and the longest wait a single action may ask for, in seconds.
    browser_page_load_timeout_s: int = Field(default=30, ge=1, le=300)
    browser_max_wait_s: int = Field(default=30, ge=1, le=300)
    # Viewport of every session, "width,height".
    browser_window_size: str = "1280,900"
    # Allow the "evaluate" action (arbitrary JavaScript in the page). Off unless an admin enables it.
    browser_allow_eval: bool = False
    # Most characters an "extract" action returns.
    browser_max_extract_chars: int = Field(default=200000, ge=1000)
    # Largest image /api/screen-analyze accepts (decoded bytes), and Tesseract's language(s).
    screen_analyze_max_bytes: int = Field(default=10000000, ge=1000)
    ocr_language: str = "eng"
    # Optional description of analysed screens by a vision model (harvis_common.llm): off while
    # SCREEN_DESCRIBE_MODEL is empty. Provider "ollama" or "openai" (an OpenAI-compatible server
    # without a key: llama.cpp, vLLM, LM Studio), its URL, and the time a description may take (s).
    screen_describe_model: str = ""
    screen_describe_provider: str = "ollama"
    screen_describe_url: str = "http://127.0.0.1:11434"
    screen_describe_timeout_s: float = Field(default=60.0, gt=0, le=600)
