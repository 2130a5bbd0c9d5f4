"""CachePerformanceMonitor: the original's metrics and report, from the
process's own counters, the module's ``CACHE.STATS`` (every process's reads)
and the server's ``INFO``."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from .limiter import reply_map
from .manager import CacheManager

logger = logging.getLogger("redis_cachekit")


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {_decode(k): _decode(v) for k, v in value.items()}
    return value


def parse_stats(reply: Any) -> dict[str, Any]:
    """``CACHE.STATS`` as nested dicts (RESP2 flat arrays or RESP3 maps)."""
    top = {k: _decode(v) for k, v in reply_map(reply).items()}
    if "namespaces" in top:
        top["namespaces"] = {
            ns: {k: _decode(v) for k, v in reply_map(m).items()}
            for ns, m in reply_map(top["namespaces"]).items()
        }
    for field in ("ratelimit", "purges"):
        if field in top:
            top[field] = {k: _decode(v) for k, v in reply_map(top[field]).items()}
    if "hit_rate" in top:
        top["hit_rate"] = float(top["hit_rate"])
    return top


class CachePerformanceMonitor:
    def __init__(self, cache_manager: CacheManager) -> None:
        self.cache = cache_manager
        self.metrics: dict[str, Any] = {
            "requests_per_second": 0,
            "average_response_time": 0,
            "cache_hit_rate": 0,
            "memory_usage": 0,
        }

    async def server_stats(self) -> dict[str, Any] | None:
        """The module's ``CACHE.STATS``; None when it cannot be read."""
        try:
            return parse_stats(await self.cache.redis_client.execute_command("CACHE.STATS"))
        except Exception as e:
            logger.warning("cachekit: CACHE.STATS failed (%s)", e)
            return None

    async def collect_metrics(self) -> dict[str, Any]:
        cache_stats = await self.cache.get_stats()
        redis_info = await self.cache.redis_client.info()
        size = len(self.cache.memory_cache)
        max_size = self.cache.memory_cache_size
        return {
            "cache_stats": cache_stats,
            "redis_info": {
                "connected_clients": redis_info.get("connected_clients", 0),
                "used_memory_human": redis_info.get("used_memory_human", "0B"),
                "used_memory_peak_human": redis_info.get("used_memory_peak_human", "0B"),
                "keyspace_hits": redis_info.get("keyspace_hits", 0),
                "keyspace_misses": redis_info.get("keyspace_misses", 0),
                "maxmemory": redis_info.get("maxmemory", 0),
                "used_memory": redis_info.get("used_memory", 0),
            },
            "memory_cache": {
                "size": size,
                "max_size": max_size,
                "usage_percent": size / max_size * 100 if max_size else 0.0,
            },
            "server_stats": await self.server_stats(),
        }

    async def generate_performance_report(self) -> dict[str, Any]:
        """The original report's keys; `server_hit_rate` and `server_stats`
        add what the module counted for every process."""
        metrics = await self.collect_metrics()
        info = metrics["redis_info"]
        hits, misses = int(info["keyspace_hits"]), int(info["keyspace_misses"])
        redis_hit_rate = hits / (hits + misses) * 100 if hits + misses > 0 else 0
        server = metrics["server_stats"]
        return {
            "timestamp": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(),
            "overall_hit_rate": metrics["cache_stats"]["hit_rate"],
            "redis_hit_rate": round(redis_hit_rate, 2),
            "memory_cache_usage": metrics["memory_cache"]["usage_percent"],
            "redis_memory_usage": info["used_memory_human"],
            "connected_clients": info["connected_clients"],
            "recommendations": await self._generate_recommendations(metrics),
            "server_hit_rate": server["hit_rate"] if server else None,
            "server_stats": server,
        }

    async def _generate_recommendations(self, metrics: dict[str, Any]) -> list[str]:
        """The original's three checks, then the module's own (without
        repeating one the module already gives)."""
        out: list[str] = []
        if metrics["cache_stats"]["hit_rate"] < 70:
            out.append("Низкий hit rate кэша. Рассмотрите увеличение TTL или размера кэша.")
        if metrics["memory_cache"]["usage_percent"] > 90:
            out.append("Высокое использование memory cache. Рассмотрите увеличение размера.")
        if int(metrics["redis_info"]["connected_clients"]) > 100:
            out.append("Большое количество подключений к Redis. Проверьте connection pooling.")
        server = metrics.get("server_stats") or {}
        for text in server.get("recommendations") or []:
            if isinstance(text, str) and text and text not in out:
                out.append(text)
        return out
