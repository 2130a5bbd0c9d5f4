"""The original design's settings and enums, with the same names and defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class CacheLevel(Enum):
    MEMORY = "memory"
    REDIS = "redis"
    PERSISTENT = "persistent"


class CacheStrategy(Enum):
    LRU = "lru"
    LFU = "lfu"
    TTL = "ttl"
    WRITE_THROUGH = "write_through"
    WRITE_BACK = "write_back"


def _env(name: str, default: Any) -> Any:
    """The environment's value of `name`, as the type of `default`."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{name}: expected a boolean, got {raw!r}")
        return low in ("1", "true", "yes", "on")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {raw!r}") from None
    return raw


def _setting(name: str, default: Any) -> Any:
    return field(default_factory=lambda: _env(name, default))


@dataclass
class CacheSettings:
    """The original ``CacheSettings`` fields and defaults. As the original's
    settings object, a field not given as an argument is read from the
    environment variable of its name when set."""

    REDIS_URL: str = _setting("REDIS_URL", "redis://localhost:6379/0")
    REDIS_MAX_CONNECTIONS: int = _setting("REDIS_MAX_CONNECTIONS", 100)
    REDIS_RETRY_ON_TIMEOUT: bool = _setting("REDIS_RETRY_ON_TIMEOUT", True)

    MEMORY_CACHE_SIZE: int = _setting("MEMORY_CACHE_SIZE", 1000)
    MEMORY_CACHE_TTL: int = _setting("MEMORY_CACHE_TTL", 3600)

    USER_CACHE_TTL: int = _setting("USER_CACHE_TTL", 1800)
    SESSION_CACHE_TTL: int = _setting("SESSION_CACHE_TTL", 3600)
    QUERY_CACHE_TTL: int = _setting("QUERY_CACHE_TTL", 1800)
    TRANSLATION_CACHE_TTL: int = _setting("TRANSLATION_CACHE_TTL", 86400)
    DOCUMENT_CACHE_TTL: int = _setting("DOCUMENT_CACHE_TTL", 7200)

    DEFAULT_RATE_LIMIT: int = _setting("DEFAULT_RATE_LIMIT", 100)
    SEARCH_RATE_LIMIT: int = _setting("SEARCH_RATE_LIMIT", 20)
    UPLOAD_RATE_LIMIT: int = _setting("UPLOAD_RATE_LIMIT", 5)
