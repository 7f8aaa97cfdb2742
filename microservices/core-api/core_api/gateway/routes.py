"""The routing table: which path prefixes belong to which service.

Matching is on path-segment boundaries (`/api/tts` matches `/api/tts` and
`/api/tts/x`, never `/api/ttsx`) and costs one dict lookup per request: the
table is indexed by the prefix itself, and a path is cut at the prefix depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from harvis_common.manifest import Manifest, load_dir

from ..settings import Settings, replica_urls

# The services behind the gateway (each also an internal-auth audience). Their prefixes and
# long routes come from their own manifest.toml (harvis_common.manifest), read at start.
SERVICES = (
    "research-service",
    "voice-service",
    "browser-service",
    "mcp-service",
    "n8n-integration",
    "vibe-coding",
)
# A checkout keeps the manifests beside core-api (microservices/<service>/manifest.toml);
# the image copies them to SERVICE_MANIFESTS_PATH.
CHECKOUT_MANIFESTS = Path(__file__).resolve().parents[3]


def manifests_dir(settings: Settings) -> Path:
    return Path(settings.service_manifests_path) if settings.service_manifests_path else CHECKOUT_MANIFESTS


def load_manifests(settings: Settings) -> dict[str, Manifest]:
    return load_dir(manifests_dir(settings), SERVICES)


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    manifest: Manifest

    @property
    def service(self) -> str:
        return self.manifest.service


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
    def from_manifests(cls, manifests: dict[str, Manifest]) -> RouteTable:
        return cls([Route(prefix, m) for m in manifests.values() for prefix in m.prefixes])

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


def service_urls(settings: Settings, manifests: dict[str, Manifest]) -> dict[str, list[str]]:
    """Each service's replicas' base URLs, in ordinal order."""
    return {service: replica_urls(getattr(settings, m.url_setting)) for service, m in manifests.items()}


def is_long(route: Route, path: str) -> bool:
    """Streams or waits on a model/job: the long read timeout (the service's manifest says)."""
    return route.manifest.is_long(path)


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
