"""The memory tier: coherent across managers, emptied on tracking loss,
bounded in count and age, and race-free against invalidations."""

from __future__ import annotations

import asyncio
import time

from helpers import eventually, settled
from servers import Server

from redis_cachekit import CacheLevel, CacheManager, UserCacheService
from redis_cachekit.tier import MemoryTier

# -- the tier alone --------------------------------------------------------


def test_lru_bound_and_order() -> None:
    tier = MemoryTier(3)
    tier.set_live(True)
    for k in "abc":
        tier.put_read(tier.begin(k), k.upper(), 60)
    assert tier.get("a") is not None  # a is now the most recent
    tier.put_read(tier.begin("d"), "D", 60)
    assert len(tier) == 3
    assert "b" not in tier and "a" in tier and "d" in tier


def test_age_bound() -> None:
    tier = MemoryTier(10)
    tier.set_live(True)
    tier.put_read(tier.begin("k"), 1, 0.05)
    assert tier.get("k") is not None
    assert tier.get("k", now=time.monotonic() + 0.06) is None
    assert "k" not in tier


def test_a_read_that_an_invalidation_overtakes_is_not_stored() -> None:
    tier = MemoryTier(10)
    tier.set_live(True)
    ticket = tier.begin("k")
    tier.invalidate("k")  # the key changed while the read was in flight
    assert not tier.put_read(ticket, "old", 60)
    tier.end(ticket)
    assert tier.get("k") is None
    # An invalidation of another key does not spoil the read.
    ticket = tier.begin("k")
    tier.invalidate("other")
    assert tier.put_read(ticket, "v", 60)


def test_a_read_across_a_flush_or_loss_is_not_stored() -> None:
    tier = MemoryTier(10)
    tier.set_live(True)
    t1 = tier.begin("k")
    tier.clear()
    assert not tier.put_read(t1, "old", 60)
    t2 = tier.begin("k")
    tier.set_live(False)
    tier.set_live(True)
    assert not tier.put_read(t2, "old", 60)
    tier.set_live(False)
    t3 = tier.begin("k")
    tier.set_live(True)
    assert not tier.put_read(t3, "read while not tracking", 60)


# -- against a server --------------------------------------------------------


async def test_memory_hits_and_redis_hits_are_counted(manager: CacheManager) -> None:
    users = UserCacheService(manager)
    assert await settled(manager, users.set_user(1, {"name": "a"}))
    assert await users.get_user(1) == {"name": "a"}
    assert await users.get_user(1) == {"name": "a"}
    stats = await manager.get_stats()
    assert stats["stats"]["redis_hits"] == 1
    assert stats["stats"]["memory_hits"] == 1
    assert stats["memory_cache_size"] == 1
    assert await users.get_user(2) is None
    stats = await manager.get_stats()
    assert stats["stats"]["misses"] == 1 and stats["total_requests"] == 3


async def test_a_write_through_another_manager_is_never_served_stale(server: Server) -> None:
    async with (
        CacheManager(server.url, ping_interval=0.2) as a,
        CacheManager(server.url, ping_interval=0.2) as b,
    ):
        ua, ub = UserCacheService(a), UserCacheService(b)
        await settled(a, ub.set_user(7, {"v": 0}))
        for v in range(1, 30):
            assert await ua.get_user(7) == {"v": v - 1}
            assert "user:7" in a.memory_cache
            before = a.memory_cache.invalidations
            assert await ub.set_user(7, {"v": v})
            assert await eventually(lambda b=before: a.memory_cache.invalidations > b)  # type: ignore[misc]
            assert await ua.get_user(7) == {"v": v}


async def test_raw_writes_from_the_cli_invalidate(manager: CacheManager, server: Server) -> None:
    users = UserCacheService(manager)
    tier = manager.memory_cache

    async def cached(value: object) -> None:
        assert await users.get_user(5) == value
        assert "user:5" in tier

    await settled(manager, users.set_user(5, {"v": 1}))
    await cached({"v": 1})
    server.cli("SET", "user:5", '{"v": 2}')
    assert await eventually(lambda: "user:5" not in tier)
    await cached({"v": 2})
    server.cli("EXPIRE", "user:5", "100")
    assert await eventually(lambda: "user:5" not in tier)
    await cached({"v": 2})
    server.cli("DEL", "user:5")
    assert await eventually(lambda: "user:5" not in tier)
    assert await users.get_user(5) is None
    await settled(manager, users.set_user(5, {"v": 3}))
    await cached({"v": 3})
    server.cli("FLUSHALL")
    assert await eventually(lambda: len(tier) == 0)
    assert await users.get_user(5) is None
    # A module write elsewhere (CACHE.INVALIDATEUSER) is seen too.
    await settled(manager, users.set_user(5, {"v": 4}))
    await cached({"v": 4})
    server.cli("CACHE.INVALIDATEUSER", "5")
    assert await eventually(lambda: "user:5" not in tier)
    assert await users.get_user(5) is None


async def test_killing_the_tracking_connection_empties_the_tier(
    manager: CacheManager, server: Server
) -> None:
    users = UserCacheService(manager)
    for i in range(5):
        await settled(manager, users.set_user(i, {"i": i}))
        await users.get_user(i)
    assert len(manager.memory_cache) == 5
    tracking = [
        line
        for line in server.cli("CLIENT", "LIST").splitlines()
        if "name=cachekit-tracking" in line
    ]
    assert len(tracking) == 1
    client_id = tracking[0].split()[0].split("=")[1]
    server.cli("CLIENT", "KILL", "ID", client_id)
    assert await eventually(lambda: not manager.tier_live, 5)
    assert len(manager.memory_cache) == 0
    # A write made while tracking is down is not missed: the tier was emptied,
    # and reads are not stored until tracking is back.
    server.cli("SET", "user:1", '{"i": 100}')
    assert await users.get_user(1) == {"i": 100}
    assert await eventually(lambda: manager.tier_live, 10)
    assert await users.get_user(1) == {"i": 100}
    assert await users.get_user(1) == {"i": 100}
    assert "user:1" in manager.memory_cache
    stats = await manager.get_stats()
    assert stats["memory_tier"]["tracking_losses"] >= 1


async def test_entries_live_no_longer_than_the_key(manager: CacheManager, server: Server) -> None:
    before = manager.memory_cache.invalidations
    server.cli("SET", "user:9", '{"a": 1}', "PX", "300")
    # The SET's own invalidation would spoil a read sent before it arrives.
    assert await eventually(lambda: manager.memory_cache.invalidations > before)
    users = UserCacheService(manager)
    assert await users.get_user(9) == {"a": 1}
    entry = manager.memory_cache.get("user:9")
    assert entry is not None
    assert entry.expires_at - time.monotonic() <= 0.3
    await asyncio.sleep(0.35)
    assert manager.memory_cache.get("user:9") is None
    assert await users.get_user(9) is None


async def test_the_tier_is_bounded_in_count(server: Server) -> None:
    async with CacheManager(server.url, memory_cache_size=10, ping_interval=0.2) as m:
        users = UserCacheService(m)
        for i in range(30):
            await settled(m, users.set_user(i, {"i": i}))
            assert await users.get_user(i) == {"i": i}
        assert len(m.memory_cache) == 10
        assert "user:29" in m.memory_cache and "user:0" not in m.memory_cache


async def test_generic_get_uses_the_tier_only_under_tracked_prefixes(
    manager: CacheManager, server: Server
) -> None:
    await settled(manager, manager.set("user_with_roles:3", {"roles": ["admin"]}))
    assert await manager.get("user_with_roles:3") == {"roles": ["admin"]}
    assert "user_with_roles:3" in manager.memory_cache
    await manager.set("other:3", {"x": 1})
    assert await manager.get("other:3") == {"x": 1}
    assert "other:3" not in manager.memory_cache
    server.cli("SET", "other:3", '{"x": 2}')
    assert await manager.get("other:3") == {"x": 2}
    # A process-local entry, as the original's CacheLevel.MEMORY.
    assert await manager.set("local:1", [1, 2], cache_level=CacheLevel.MEMORY)
    assert await manager.get("local:1", cache_level=CacheLevel.MEMORY) == [1, 2]
    assert server.cli("EXISTS", "local:1") == "0"


async def test_reads_racing_writes_end_coherent(server: Server) -> None:
    """Many reads in flight while another manager writes: once the writes
    stop and the last invalidation has arrived, every read gives the last
    value."""
    async with (
        CacheManager(server.url, ping_interval=0.2) as a,
        CacheManager(server.url, ping_interval=0.2) as b,
    ):
        ua, ub = UserCacheService(a), UserCacheService(b)
        await ub.set_user(1, {"v": -1})

        async def writer() -> None:
            for v in range(200):
                await ub.set_user(1, {"v": v})

        async def reader() -> None:
            for _ in range(200):
                await ua.get_user(1)

        await asyncio.gather(writer(), *(reader() for _ in range(5)))
        await b.redis_client.execute_command("CACHE.SETUSER", "1", '{"v": "last"}')
        assert await eventually(lambda: "user:1" not in a.memory_cache)
        # Any value still cached must be the last one.
        for _ in range(20):
            assert await ua.get_user(1) == {"v": "last"}
