"""The original design's settings and enums, with the same names and defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from enum import Enum


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


@dataclass
class CacheSettings:
    """The original ``CacheSettings`` fields and defaults. A plain dataclass;
    :meth:`from_env` reads environment variables of the same names, as the
    original's settings object did."""

    REDIS_URL: str = "redis://localhost:6379/0"
    REDIS_MAX_CONNECTIONS: int = 100
    REDIS_RETRY_ON_TIMEOUT: bool = True

    MEMORY_CACHE_SIZE: int = 1000
    MEMORY_CACHE_TTL: int = 3600

    USER_CACHE_TTL: int = 1800
    SESSION_CACHE_TTL: int = 3600
    QUERY_CACHE_TTL: int = 1800
    TRANSLATION_CACHE_TTL: int = 86400
    DOCUMENT_CACHE_TTL: int = 7200

    DEFAULT_RATE_LIMIT: int = 100
    SEARCH_RATE_LIMIT: int = 20
    UPLOAD_RATE_LIMIT: int = 5

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> CacheSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.name)
            if raw is None:
                continue
            if f.type in ("bool", bool):
                low = raw.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(f"{f.name}: expected a boolean, got {raw!r}")
                values[f.name] = low in ("1", "true", "yes", "on")
            elif f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise ValueError(f"{f.name}: expected an integer, got {raw!r}") from None
            else:
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]
