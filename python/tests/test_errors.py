"""Bad values, wrong types, a server that goes away and comes back, bad
arguments: a failed read is a logged miss, never a stale value."""

from __future__ import annotations

import asyncio
import logging

import pytest
from helpers import eventually, settled
from servers import Server

from redis_cachekit import CacheManager, QueryCacheService, UserCacheService


async def test_a_value_that_is_not_json_is_a_logged_miss(
    manager: CacheManager, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.cli("SET", "user:8", "not json")
    users = UserCacheService(manager)
    with caplog.at_level(logging.WARNING, logger="redis_cachekit"):
        assert await users.get_user(8) is None
    assert "not JSON" in caplog.text
    assert "user:8" not in manager.memory_cache
    assert manager.cache_stats["misses"] == 1
    server.cli("SET", "plain:1", "\xff")
    assert await manager.get("plain:1") is None


async def test_a_key_of_another_type_is_a_logged_miss(
    manager: CacheManager, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.cli("LPUSH", "user:9", "x")
    users = UserCacheService(manager)
    with caplog.at_level(logging.WARNING, logger="redis_cachekit"):
        assert await users.get_user(9) is None
        # The module's SET refuses to replace another type: a logged False.
        assert await users.set_user(9, {"a": 1}) is False
    assert "WRONGTYPE" in caplog.text
    assert server.cli("TYPE", "user:9") == "list"
    assert "user:9" not in manager.memory_cache


async def test_invalid_json_shapes_are_refused_by_the_server(
    manager: CacheManager, caplog: pytest.LogCaptureFixture
) -> None:
    users = UserCacheService(manager)
    with caplog.at_level(logging.WARNING, logger="redis_cachekit"):
        assert await users.set_user(1, ["not", "an", "object"]) is False  # type: ignore[arg-type]
    assert "CACHE.SETUSER" in caplog.text
    assert await users.get_user(1) is None


async def test_bad_arguments_raise(manager: CacheManager) -> None:
    users, q = UserCacheService(manager), QueryCacheService(manager)
    with pytest.raises(TypeError):
        await users.get_user(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await users.get_user(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await users.get_user("")
    with pytest.raises(TypeError):
        await q.get_search_results(b"q", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await q.get_search_results("q", 1, ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await manager.set("k", 1, ttl=-5)
    users.user_ttl = -1
    with pytest.raises(ValueError):
        await users.set_user(1, {})
    with pytest.raises(ValueError):
        CacheManager("redis://127.0.0.1:1", memory_cache_size=-1)
    with pytest.raises(ValueError):
        CacheManager("redis://127.0.0.1:1", default_ttl=-1)


async def test_a_server_that_goes_away_and_comes_back(
    fresh_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    async with CacheManager(fresh_server.url, ping_interval=0.2) as m:
        users = UserCacheService(m)
        await settled(m, users.set_user(1, {"v": 1}))
        assert await users.get_user(1) == {"v": 1}
        assert "user:1" in m.memory_cache
        fresh_server.stop()
        assert await eventually(lambda: not m.tier_live)
        assert len(m.memory_cache) == 0
        with caplog.at_level(logging.WARNING, logger="redis_cachekit"):
            assert await users.get_user(1) is None
            assert await users.set_user(1, {"v": 2}) is False
            assert await m.delete("user:1") is False
        assert "failed" in caplog.text
        stats = await m.get_stats()
        assert stats["redis_memory_usage"] == "N/A"
        fresh_server.start()  # empty: no persistence
        assert await eventually(lambda: m.tier_live, 10)
        assert await users.get_user(1) is None
        await settled(m, users.set_user(1, {"v": 3}))
        # The tier is in use again once the write's own invalidation is in.
        for _ in range(100):
            assert await users.get_user(1) == {"v": 3}
            if "user:1" in m.memory_cache:
                break
            await asyncio.sleep(0.01)
        assert "user:1" in m.memory_cache
        hits = m.cache_stats["memory_hits"]
        assert await users.get_user(1) == {"v": 3}
        assert m.cache_stats["memory_hits"] == hits + 1
