"""A client on RESP3 (`?protocol=3`): maps arrive as dicts; the tracking
connection stays on RESP2 pub/sub by design."""

from __future__ import annotations

from helpers import eventually, settled
from servers import Server

from redis_cachekit import CacheManager, CachePerformanceMonitor, RateLimiter, UserCacheService


async def test_everything_works_on_resp3(server: Server) -> None:
    async with CacheManager(server.url + "?protocol=3", ping_interval=0.2) as m:
        assert m.tier_live
        users = UserCacheService(m)
        await settled(m, users.set_user(1, {"a": 1}))
        assert await users.get_user(1) == {"a": 1}
        assert "user:1" in m.memory_cache
        server.cli("SET", "user:1", '{"a": 2}')
        assert await eventually(lambda: "user:1" not in m.memory_cache)
        assert await users.get_user(1) == {"a": 2}
        r = await RateLimiter(m).is_allowed("u", 1, 60)
        assert r["allowed"] is True and r["remaining"] == 0
        info = await RateLimiter(m).get_rate_limit_info("u")
        assert info["current_requests"] == 1
        report = await CachePerformanceMonitor(m).generate_performance_report()
        assert report["server_stats"]["namespaces"]["user"]["hits"] >= 1
