"""The routing table: which path prefixes belong to which service.

Matching is on path-segment boundaries (`/api/tts` matches `/api/tts` and
`/api/tts/x`, never `/api/ttsx`) and costs one dict lookup per request: the
table is indexed by the prefix itself, and a path is cut at the prefix depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from ..settings import Settings

# Service name (also its internal-auth audience) -> (settings field with its URL, prefixes).
SERVICE_PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "research-service": (
        "research_service_url",
        ("/api/web-search", "/api/research-chat", "/api/fact-check", "/api/comparative-research", "/api/research"),
    ),
    "voice-service": (
        "voice_service_url",
        ("/api/mic-chat", "/api/tts", "/api/stt", "/api/audio", "/api/jobs", "/api/voice"),
    ),
    "browser-service": ("browser_service_url", ("/api/browser", "/api/screen-analyze")),
    "mcp-service": ("mcp_service_url", ("/api/mcp",)),
    "n8n-integration": ("n8n_integration_url", ("/api/n8n",)),
    "vibe-coding": ("vibe_coding_url", ("/api/vibe", "/api/vibecoding")),
}

# Routes that stream (SSE) or wait on a model (an LLM on a CPU, Whisper, Piper, OCR): they get
# the long read timeout, not the 60 s that would turn a slow model into a 504.
STREAMING_PREFIXES = frozenset(
    {
        "/api/research-chat",
        "/api/mic-chat",
        "/api/fact-check",
        "/api/comparative-research",
        "/api/stt",
        "/api/tts",
        "/api/screen-analyze",
    }
)
STREAMING_PATHS = frozenset(
    {
        "/api/vibe/execute",
        "/api/vibe/ai/propose",
        "/api/n8n/workflow/create",  # from a prompt: the model writes the workflow
        "/api/n8n/workflow/execute",
        "/api/n8n/optimize",
        "/api/research/sources",
    }
)
STREAMING_SUFFIXES = ("/diagnostics/stream",)


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    service: str
    streaming: bool


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self._by_prefix: dict[str, Route] = {}
        depths: set[int] = set()
        for route in routes:
            prefix = route.prefix.rstrip("/")
            if not prefix.startswith("/") or "//" in prefix:
                raise ValueError(f"bad gateway prefix {route.prefix!r}")
            self._by_prefix[prefix] = route
            depths.add(prefix.count("/"))
        self._depths = tuple(sorted(depths, reverse=True))  # longest prefix wins

    @classmethod
    def default(cls) -> RouteTable:
        return cls(
            [
                Route(prefix, service, prefix in STREAMING_PREFIXES)
                for service, (_, prefixes) in SERVICE_PREFIXES.items()
                for prefix in prefixes
            ]
        )

    def match(self, path: str) -> Route | None:
        for depth in self._depths:
            # Index of the slash ending segment number `depth`, if any.
            end = 0
            for _ in range(depth):
                end = path.find("/", end + 1)
                if end < 0:
                    break
            # No slash after the last segment: the whole path is the candidate.
            route = self._by_prefix.get(path if end < 0 else path[:end])
            if route is not None:
                return route
        return None

    def services(self) -> list[str]:
        return sorted({r.service for r in self._by_prefix.values()})


def service_urls(settings: Settings) -> dict[str, str]:
    return {service: getattr(settings, field) for service, (field, _) in SERVICE_PREFIXES.items()}


def is_streaming(route: Route, path: str) -> bool:
    return route.streaming or path in STREAMING_PATHS or path.endswith(STREAMING_SUFFIXES)


def has_dot_segment(path: str) -> bool:
    """True for `..` path segments, including percent-encoded ones.

    The ASGI `path` is already percent-decoded once (`%2e%2e` arrives as `..`);
    a second decoding catches `%252e%252e`, which a service decoding again
    would otherwise turn into a traversal.
    """
    if ".." in path and ".." in path.split("/"):
        return True
    if "%" in path:
        decoded = unquote(path)
        return ".." in decoded and ".." in decoded.replace("\\", "/").split("/")
    return False
