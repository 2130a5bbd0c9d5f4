"""Concurrent misses of one key load once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from servers import Server

from redis_cachekit import CacheManager, QueryCacheService, UserCacheService


async def test_a_hundred_concurrent_misses_call_the_loader_once(
    manager: CacheManager, server: Server
) -> None:
    calls = 0

    async def loader() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"loaded": True}

    results = await asyncio.gather(
        *(manager.get_or_set("doc:1", loader, ttl=30) for _ in range(100))
    )
    assert calls == 1
    assert all(r == {"loaded": True} for r in results)
    assert 25 <= int(server.cli("TTL", "doc:1")) <= 30
    # Now cached: no more loads.
    assert await manager.get_or_set("doc:1", loader) == {"loaded": True}
    assert calls == 1


async def test_the_services_load_once_too(manager: CacheManager, server: Server) -> None:
    calls = 0

    async def loader() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"id": 5}

    users = UserCacheService(manager)
    results = await asyncio.gather(*(users.get_or_set_user(5, loader) for _ in range(100)))
    assert calls == 1 and all(r == {"id": 5} for r in results)
    assert server.cli("GET", "user:5") == '{"id": 5}'
    q = QueryCacheService(manager)

    async def search() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return {"hits": []}

    await asyncio.gather(
        *(q.get_or_set_search_results("x", 5, search, {"a": 1}) for _ in range(50))
    )
    assert calls == 2
    assert await q.get_search_results("x", 5, {"a": 1}) == {"hits": []}


async def test_concurrent_reads_of_one_key_share_one_round_trip(manager: CacheManager) -> None:
    users = UserCacheService(manager)
    await users.set_user(1, {"a": 1})
    results = await asyncio.gather(*(users.get_user(1) for _ in range(100)))
    assert all(r == {"a": 1} for r in results)
    assert manager.cache_stats["hits"] == 100


async def test_a_failing_loader_fails_every_waiter_and_caches_nothing(
    manager: CacheManager, server: Server
) -> None:
    async def loader() -> int:
        await asyncio.sleep(0.02)
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(manager.get_or_set("k", loader) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert server.cli("EXISTS", "k") == "0"
    with pytest.raises(RuntimeError):
        await manager.get_or_set("k", loader)
