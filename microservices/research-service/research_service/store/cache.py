"""research-service's state: a TTL cache of JSON values (search results and extracted pages,
RESEARCH_CACHE_TTL_S) — Redis when REDIS_URL is set (keys under RESEARCH_REDIS_PREFIX),
in-process otherwise."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

import orjson
from prometheus_client import Counter

log = logging.getLogger("research.cache")

# Per kind of entry (the key's prefix: search results, pages), hit or miss (docs/observability.md).
LOOKUPS = Counter("harvis_research_cache_lookups", "Cache lookups by kind and result.", ("kind", "result"))


def _counted(key: str, hit: bool) -> None:
    LOOKUPS.labels(key.partition(":")[0][:20], "hit" if hit else "miss").inc()


def cache_key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


class MemoryCache:
    backend = "memory"

    def __init__(self, ttl_s: int, max_items: int = 2000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.hits = self.misses = 0

    async def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            self.misses += 1
            _counted(key, False)
            return None
        self._items.move_to_end(key)
        self.hits += 1
        _counted(key, True)
        return orjson.loads(item[1])

    async def set(self, key: str, value: Any) -> None:
        if self.ttl_s <= 0:
            return
        self._items[key] = (time.monotonic() + self.ttl_s, orjson.dumps(value))
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    async def ping(self) -> str:
        return f"memory ({len(self._items)} items)"

    async def close(self) -> None:
        self._items.clear()


class RedisCache:
    backend = "redis"

    def __init__(self, url: str, ttl_s: int, prefix: str) -> None:
        import redis.asyncio as redis

        self.ttl_s = ttl_s
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.hits = self.misses = 0

    async def get(self, key: str) -> Any | None:
        try:
            raw = await self._redis.get(self.prefix + key)
        except Exception as exc:  # a cache that is down is a miss, not a failure
            log.warning("redis cache get failed: %s", exc)
            raw = None
        if raw is None:
            self.misses += 1
            _counted(key, False)
            return None
        self.hits += 1
        _counted(key, True)
        return orjson.loads(raw)

    async def set(self, key: str, value: Any) -> None:
        if self.ttl_s <= 0:
            return
        try:
            await self._redis.set(self.prefix + key, orjson.dumps(value), ex=self.ttl_s)
        except Exception as exc:
            log.warning("redis cache set failed: %s", exc)

    async def ping(self) -> str:
        await self._redis.ping()
        return "redis"

    async def close(self) -> None:
        await self._redis.aclose()


def make_cache(redis_url: str, ttl_s: int, prefix: str) -> MemoryCache | RedisCache:
    return RedisCache(redis_url, ttl_s, prefix) if redis_url else MemoryCache(ttl_s)
