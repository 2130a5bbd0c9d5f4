"""Redis Cluster: three masters with key-style tagged, through
redis.asyncio.cluster.RedisCluster. The memory tier holds no Redis values
there, so a read is never stale."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio.cluster import RedisCluster
from servers import Cluster

from redis_cachekit import (
    CacheManager,
    QueryCacheService,
    RateLimiter,
    TranslationCacheService,
    UserCacheService,
)


@pytest.fixture(scope="module")
def cluster(flavor: str) -> Iterator[Cluster]:
    c = Cluster(flavor)
    yield c
    c.stop()


async def test_the_services_work_on_a_cluster(cluster: Cluster) -> None:
    async with CacheManager(cluster.url, cluster=True) as m:
        assert m.cluster and not m.tier_live
        assert m.key_style == "tagged"
        users, q = UserCacheService(m), QueryCacheService(m)
        t, limiter = TranslationCacheService(m), RateLimiter(m)
        for uid in range(30):  # ids spread over every node
            assert await users.set_user(uid, {"id": uid})
            assert await users.set_user_permissions(uid, ["read"])
            assert await users.set_user_session(uid, {"s": uid})
            assert await users.get_user(uid) == {"id": uid}
            assert await q.set_search_results("q", uid, {"r": uid}, {"a": 1})
            assert await q.get_search_results("q", uid, {"a": 1}) == {"r": uid}
            assert await t.set_translation(f"text {uid}", "ru", "en", {"t": uid})
            assert await t.get_translation(f"text {uid}", "ru", "en") == {"t": uid}
            assert await users.invalidate_user_cache(uid)
            assert await users.get_user_permissions(uid) is None
        assert len(m.memory_cache) == 0
        results = await asyncio.gather(*(limiter.is_allowed("u", 20, 60) for _ in range(50)))
        assert sum(r["allowed"] for r in results) == 20


async def test_no_stale_read_after_a_write_through_another_client(cluster: Cluster) -> None:
    async with CacheManager(cluster.url, cluster=True) as m:
        users = UserCacheService(m)
        other = RedisCluster.from_url(cluster.url)
        try:
            for v in range(20):
                await other.execute_command("CACHE.SETUSER", "5", f'{{"v": {v}}}')
                assert await users.get_user(5) == {"v": v}
                assert await users.get_user(5) == {"v": v}
        finally:
            await other.aclose()
        stats = await m.get_stats()
        assert stats["stats"]["memory_hits"] == 0
