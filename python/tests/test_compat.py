"""Code written against the original manager's internals keeps working: its
own cleanup and monitor classes, its helpers, its settings from the
environment."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import seed_services as seed
from helpers import settled

from redis_cachekit import CacheLevel, CacheManager, CacheSettings, UserCacheService


async def test_the_original_cleanup_and_monitor_run_on_the_package(manager: CacheManager) -> None:
    users = UserCacheService(manager)
    for i in range(3):
        await settled(manager, users.set_user(i, {"i": i}))
        await users.get_user(i)
    await manager._set_memory_cache("local:1", {"x": 1}, 0)
    await manager.set("local:2", {"x": 2}, ttl=60, cache_level=CacheLevel.MEMORY)
    entry = manager.memory_cache["local:2"]
    assert isinstance(entry["expires_at"], datetime) and entry["value"] == {"x": 2}
    assert not manager._is_expired(entry)
    cleanup = seed.CacheCleanupService(manager)
    await asyncio.sleep(0.01)
    assert await cleanup.cleanup_expired_entries() == 0  # "local:1" was never stored (ttl 0)
    await cleanup.cleanup_memory_cache()
    await cleanup.optimize_redis_memory()
    del manager.memory_cache["local:2"]
    assert "local:2" not in manager.memory_cache
    metrics = await seed.CachePerformanceMonitor(manager).collect_metrics()
    assert metrics["memory_cache"]["size"] == len(manager.memory_cache)
    assert metrics["cache_stats"]["stats"]["redis_hits"] >= 1
    assert sorted(manager.memory_cache.keys()) == [
        k for k, _ in sorted(manager.memory_cache.items())
    ]


def test_settings_read_the_environment_as_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CacheSettings().USER_CACHE_TTL == 1800
    monkeypatch.setenv("USER_CACHE_TTL", "900")
    monkeypatch.setenv("REDIS_RETRY_ON_TIMEOUT", "false")
    s = CacheSettings()
    assert s.USER_CACHE_TTL == 900 and s.REDIS_RETRY_ON_TIMEOUT is False
    assert CacheSettings(USER_CACHE_TTL=60).USER_CACHE_TTL == 60
    monkeypatch.setenv("MEMORY_CACHE_SIZE", "lots")
    with pytest.raises(ValueError, match="MEMORY_CACHE_SIZE"):
        CacheSettings()
