"""CachePerformanceMonitor and CacheCleanupService: the original's shapes."""

from __future__ import annotations

import asyncio

from helpers import settled
from servers import Server

from redis_cachekit import (
    CacheCleanupService,
    CacheManager,
    CachePerformanceMonitor,
    UserCacheService,
)

REPORT_KEYS = {
    "timestamp",
    "overall_hit_rate",
    "redis_hit_rate",
    "memory_cache_usage",
    "redis_memory_usage",
    "connected_clients",
    "recommendations",
}


async def test_the_report_has_the_original_keys(manager: CacheManager) -> None:
    users = UserCacheService(manager)
    await settled(manager, users.set_user(1, {"a": 1}))
    for _ in range(3):
        await users.get_user(1)
    await users.get_user(2)
    monitor = CachePerformanceMonitor(manager)
    metrics = await monitor.collect_metrics()
    assert set(metrics) >= {"cache_stats", "redis_info", "memory_cache"}
    assert metrics["memory_cache"]["max_size"] == 1000
    assert metrics["server_stats"]["namespaces"]["user"]["misses"] == 1
    report = await monitor.generate_performance_report()
    assert set(report) >= REPORT_KEYS
    assert report["overall_hit_rate"] == 75.0
    assert report["connected_clients"] >= 2
    # The server counted the reads that reached it (memory hits do not).
    server = report["server_stats"]
    assert server["hits"] + server["misses"] == manager.cache_stats["redis_hits"] + 1
    assert any("hit rate" in r for r in report["recommendations"]) is False


async def test_a_low_hit_rate_is_recommended_against(manager: CacheManager) -> None:
    users = UserCacheService(manager)
    for i in range(5):
        await users.get_user(i)
    report = await CachePerformanceMonitor(manager).generate_performance_report()
    assert report["overall_hit_rate"] == 0
    assert any("hit rate" in r for r in report["recommendations"])


async def test_cleanup_trims_the_tier_and_leaves_purging_to_the_module(
    manager: CacheManager, server: Server
) -> None:
    manager.memory_ttl = 0.05
    users = UserCacheService(manager)
    await users.set_user(1, {"a": 1})
    for _ in range(50):
        await users.get_user(1)
        if "user:1" in manager.memory_cache:
            break
        await asyncio.sleep(0.01)
    assert "user:1" in manager.memory_cache
    await asyncio.sleep(0.06)
    cleanup = CacheCleanupService(manager)
    assert await cleanup.cleanup_expired_entries() == 1
    assert len(manager.memory_cache) == 0
    assert await cleanup.cleanup_memory_cache() == 0
    has_purge = server.cli("CONFIG", "GET", "cachekit.purge-threshold") != ""
    assert await cleanup.server_purges() is has_purge
    # Without the module's purge, the original's check: above 80% of maxmemory.
    cleanup._server_purges = False
    server.cli("CONFIG", "SET", "maxmemory", "0")
    assert await cleanup.optimize_redis_memory() is False
    used = int(server.cli("INFO", "memory").split("used_memory:")[1].split()[0])
    server.cli("CONFIG", "SET", "maxmemory", str(int(used * 1.1)))
    try:
        assert await cleanup.optimize_redis_memory() is True
    finally:
        server.cli("CONFIG", "SET", "maxmemory", "0")


async def test_the_loop_runs_and_stops(manager: CacheManager) -> None:
    cleanup = CacheCleanupService(manager)
    cleanup.cleanup_interval = 0.05
    task = asyncio.create_task(cleanup.start_cleanup_task())
    await asyncio.sleep(0.2)
    assert cleanup.running
    cleanup.stop_cleanup_task()
    await asyncio.wait_for(task, 2)
