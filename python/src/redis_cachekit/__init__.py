"""redis-cachekit: the original bot's cache services on the cachekit Redis
module, with an in-process memory tier kept coherent by Redis invalidations.

A bot written against the original services moves by changing its imports::

    from redis_cachekit import CacheManager, UserCacheService, RateLimiter
"""

from .cleanup import CacheCleanupService
from .errors import CacheKitError, RateLimiterError
from .keys import KeyScheme
from .limiter import RateLimiter
from .manager import CacheManager
from .monitor import CachePerformanceMonitor
from .services import (
    DocumentCacheService,
    EmbeddingCacheService,
    QueryCacheService,
    TranslationCacheService,
    UserCacheService,
)
from .settings import CacheLevel, CacheSettings, CacheStrategy

__all__ = [
    "CacheCleanupService",
    "CacheKitError",
    "CacheLevel",
    "CacheManager",
    "CachePerformanceMonitor",
    "CacheSettings",
    "CacheStrategy",
    "DocumentCacheService",
    "EmbeddingCacheService",
    "KeyScheme",
    "QueryCacheService",
    "RateLimiter",
    "RateLimiterError",
    "TranslationCacheService",
    "UserCacheService",
]

__version__ = "0.1.0"
