"""The original design's cache services as published (CacheManager,
UserCacheService, QueryCacheService, TranslationCacheService, RateLimiter),
kept here unchanged but for `print` and `datetime.utcnow` (deprecated), so
the tests and the benchmark can run them beside the package on one server.
Its flaws are the point: a memory tier that other processes never
invalidate, and a read-modify-write rate limiter."""
# ruff: noqa

import hashlib
import json
import logging
import pickle
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

import redis.asyncio as redis

log = logging.getLogger("seed")


def _utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


class CacheManager:
    def __init__(self, redis_url: str, memory_cache_size: int = 1000, default_ttl: int = 3600):
        self.redis_pool = redis.ConnectionPool.from_url(redis_url)
        self.redis_client = redis.Redis(connection_pool=self.redis_pool)
        self.memory_cache = {}
        self.memory_cache_size = memory_cache_size
        self.default_ttl = default_ttl
        self.cache_stats = {"hits": 0, "misses": 0, "memory_hits": 0, "redis_hits": 0}

    async def get(self, key, cache_level=None, deserializer="json"):
        try:
            if key in self.memory_cache:
                entry = self.memory_cache[key]
                if not self._is_expired(entry):
                    self.cache_stats["hits"] += 1
                    self.cache_stats["memory_hits"] += 1
                    return entry["value"]
                else:
                    del self.memory_cache[key]
            redis_value = await self.redis_client.get(key)
            if redis_value:
                self.cache_stats["hits"] += 1
                self.cache_stats["redis_hits"] += 1
                value = self._deserialize(redis_value, deserializer)
                await self._set_memory_cache(key, value, self.default_ttl)
                return value
            self.cache_stats["misses"] += 1
            return None
        except Exception as e:
            log.warning(f"Cache get error: {e}")
            return None

    async def set(self, key, value, ttl=None, cache_level=None, serializer="json"):
        try:
            ttl = ttl or self.default_ttl
            await self._set_memory_cache(key, value, ttl)
            serialized_value = self._serialize(value, serializer)
            await self.redis_client.setex(key, ttl, serialized_value)
            return True
        except Exception as e:
            log.warning(f"Cache set error: {e}")
            return False

    async def delete(self, key):
        try:
            if key in self.memory_cache:
                del self.memory_cache[key]
            await self.redis_client.delete(key)
            return True
        except Exception as e:
            log.warning(f"Cache delete error: {e}")
            return False

    async def _set_memory_cache(self, key, value, ttl):
        if len(self.memory_cache) >= self.memory_cache_size:
            oldest_key = min(
                self.memory_cache.keys(), key=lambda k: self.memory_cache[k]["accessed_at"]
            )
            del self.memory_cache[oldest_key]
        self.memory_cache[key] = {
            "value": value,
            "expires_at": _utcnow() + timedelta(seconds=ttl),
            "accessed_at": _utcnow(),
        }

    def _is_expired(self, entry):
        return _utcnow() > entry["expires_at"]

    def _serialize(self, value, serializer):
        if serializer == "json":
            return json.dumps(value, ensure_ascii=False).encode("utf-8")
        elif serializer == "pickle":
            return pickle.dumps(value)
        return str(value).encode("utf-8")

    def _deserialize(self, value, deserializer):
        if deserializer == "json":
            return json.loads(value.decode("utf-8"))
        elif deserializer == "pickle":
            return pickle.loads(value)
        return value.decode("utf-8")


class UserCacheService:
    def __init__(self, cache_manager):
        self.cache = cache_manager
        self.user_ttl = 1800
        self.session_ttl = 3600

    async def get_user(self, user_id):
        return await self.cache.get(f"user:{user_id}")

    async def set_user(self, user_id, user_data):
        return await self.cache.set(f"user:{user_id}", user_data, self.user_ttl)

    async def get_user_permissions(self, user_id):
        return await self.cache.get(f"user_permissions:{user_id}")

    async def set_user_permissions(self, user_id, permissions):
        return await self.cache.set(f"user_permissions:{user_id}", permissions, self.user_ttl)

    async def get_user_session(self, telegram_id):
        return await self.cache.get(f"session:{telegram_id}")

    async def set_user_session(self, telegram_id, session_data):
        return await self.cache.set(f"session:{telegram_id}", session_data, self.session_ttl)

    async def invalidate_user_cache(self, user_id):
        for key in [f"user:{user_id}", f"user_permissions:{user_id}", f"session:{user_id}"]:
            await self.cache.delete(key)
        return True


class QueryCacheService:
    def __init__(self, cache_manager):
        self.cache = cache_manager
        self.query_ttl = 3600
        self.search_ttl = 1800

    async def get_search_results(self, query, user_id, filters=None):
        return await self.cache.get(self._generate_search_cache_key(query, user_id, filters))

    async def set_search_results(self, query, user_id, results, filters=None):
        key = self._generate_search_cache_key(query, user_id, filters)
        return await self.cache.set(key, results, self.search_ttl)

    async def get_rag_response(self, query, user_id, context_hash):
        cache_key = (
            f"rag_response:{hashlib.md5(f'{query}:{user_id}:{context_hash}'.encode()).hexdigest()}"
        )
        return await self.cache.get(cache_key)

    async def set_rag_response(self, query, user_id, context_hash, response):
        cache_key = (
            f"rag_response:{hashlib.md5(f'{query}:{user_id}:{context_hash}'.encode()).hexdigest()}"
        )
        return await self.cache.set(cache_key, response, self.query_ttl)

    def _generate_search_cache_key(self, query, user_id, filters=None):
        filters_str = json.dumps(filters or {}, sort_keys=True)
        cache_string = f"{query}:{user_id}:{filters_str}"
        return f"search:{hashlib.md5(cache_string.encode()).hexdigest()}"


class TranslationCacheService:
    def __init__(self, cache_manager):
        self.cache = cache_manager
        self.translation_ttl = 86400

    async def get_translation(self, text, source_lang, target_lang):
        return await self.cache.get(self._generate_translation_key(text, source_lang, target_lang))

    async def set_translation(self, text, source_lang, target_lang, translation_result):
        key = self._generate_translation_key(text, source_lang, target_lang)
        return await self.cache.set(key, translation_result, self.translation_ttl)

    def _generate_translation_key(self, text, source_lang, target_lang):
        text_hash = hashlib.md5(text.encode()).hexdigest()
        return f"translation:{text_hash}:{source_lang}:{target_lang}"


class RateLimiter:
    def __init__(self, cache_manager):
        self.cache = cache_manager

    async def is_allowed(self, identifier, limit, window_seconds, action="default"):
        cache_key = f"rate_limit:{action}:{identifier}"
        current_time = int(time.time())
        window_start = current_time - window_seconds
        requests_data = await self.cache.get(cache_key) or []
        recent_requests = [t for t in requests_data if t > window_start]
        if len(recent_requests) >= limit:
            return {
                "allowed": False,
                "current_count": len(recent_requests),
                "limit": limit,
                "reset_time": min(recent_requests) + window_seconds,
                "retry_after": min(recent_requests) + window_seconds - current_time,
            }
        recent_requests.append(current_time)
        await self.cache.set(cache_key, recent_requests, window_seconds)
        return {
            "allowed": True,
            "current_count": len(recent_requests),
            "limit": limit,
            "remaining": limit - len(recent_requests),
        }

    async def get_rate_limit_info(self, identifier, action="default"):
        requests_data = await self.cache.get(f"rate_limit:{action}:{identifier}") or []
        return {"current_requests": len(requests_data), "requests_timestamps": requests_data}


class CacheCleanupService:
    def __init__(self, cache_manager):
        self.cache = cache_manager
        self.cleanup_interval = 3600
        self.running = False

    async def cleanup_expired_entries(self):
        current_time = _utcnow()
        expired_keys = [
            key
            for key, entry in self.cache.memory_cache.items()
            if current_time > entry["expires_at"]
        ]
        for key in expired_keys:
            del self.cache.memory_cache[key]
        log.info(f"Cleaned up {len(expired_keys)} expired memory cache entries")
        return len(expired_keys)

    async def cleanup_memory_cache(self):
        if len(self.cache.memory_cache) > self.cache.memory_cache_size:
            sorted_items = sorted(
                self.cache.memory_cache.items(), key=lambda x: x[1]["accessed_at"]
            )
            items_to_remove = len(sorted_items) // 5
            for i in range(items_to_remove):
                del self.cache.memory_cache[sorted_items[i][0]]

    async def optimize_redis_memory(self):
        memory_info = await self.cache.redis_client.info("memory")
        used_memory = memory_info.get("used_memory", 0)
        max_memory = memory_info.get("maxmemory", 0)
        if max_memory > 0 and used_memory / max_memory > 0.8:
            await self.cache.redis_client.execute_command("MEMORY", "PURGE")


class CachePerformanceMonitor:
    def __init__(self, cache_manager):
        self.cache = cache_manager

    async def collect_metrics(self):
        cache_stats = await self.cache.get_stats()
        redis_info = await self.cache.redis_client.info()
        memory_info = await self.cache.redis_client.info("memory")
        return {
            "cache_stats": cache_stats,
            "redis_info": {
                "connected_clients": redis_info.get("connected_clients", 0),
                "used_memory_human": memory_info.get("used_memory_human", "0B"),
                "keyspace_hits": redis_info.get("keyspace_hits", 0),
                "keyspace_misses": redis_info.get("keyspace_misses", 0),
            },
            "memory_cache": {
                "size": len(self.cache.memory_cache),
                "max_size": self.cache.memory_cache_size,
                "usage_percent": len(self.cache.memory_cache) / self.cache.memory_cache_size * 100,
            },
        }
