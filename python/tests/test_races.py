"""Races a slow network makes likely, made certain by delaying replies:
the tier never serves what an invalidation or the process's own write has
superseded."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import eventually, settled
from servers import Server

from redis_cachekit import CacheManager, UserCacheService


def slow_replies(m: CacheManager, delay: float) -> None:
    """Every pipelined read's reply reaches the manager `delay` s late."""
    client = m.redis_client
    make = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        execute = pipe.execute

        async def late(*a: Any, **k: Any) -> Any:
            result = await execute(*a, **k)
            await asyncio.sleep(delay)
            return result

        pipe.execute = late
        return pipe

    client.pipeline = pipeline


async def test_a_read_after_an_invalidation_does_not_join_an_older_read(server: Server) -> None:
    async with (
        CacheManager(server.url, ping_interval=0.2) as a,
        CacheManager(server.url, ping_interval=0.2) as b,
    ):
        ua, ub = UserCacheService(a), UserCacheService(b)
        await settled(b, ub.set_user(7, {"v": "old"}))

        slow_replies(a, 0.3)
        first = asyncio.create_task(ua.get_user(7))
        await asyncio.sleep(0.05)  # the first read has been answered: old
        before = a.memory_cache.invalidations
        await ub.set_user(7, {"v": "new"})
        assert await eventually(lambda: a.memory_cache.invalidations > before)
        assert await ua.get_user(7) == {"v": "new"}
        assert await first == {"v": "old"}
        assert a.memory_cache.get("user:7") is None or (await ua.get_user(7)) == {"v": "new"}
        assert await ua.get_user(7) == {"v": "new"}


async def test_a_process_reads_its_own_write(manager: CacheManager) -> None:
    users = UserCacheService(manager)
    await settled(manager, users.set_user(1, {"v": "old"}))
    slow_replies(manager, 0.2)
    # The tracking connection lags: the server's invalidations land 0.5 s late.
    tier = manager.memory_cache
    invalidate = tier.invalidate

    def lagging(key: str, *, local: bool = False) -> None:
        if local:
            invalidate(key, local=True)
        else:
            asyncio.get_running_loop().call_later(0.5, invalidate, key)

    tier.invalidate = lagging  # type: ignore[method-assign]
    client = manager.redis_client
    send = client.execute_command

    async def late_write(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.05)
        return await send(*args, **kwargs)

    client.execute_command = late_write
    write = asyncio.create_task(users.set_user(1, {"v": "new"}))
    await asyncio.sleep(0.01)
    # Sent after the writer dropped the key, before its write: answered late, old.
    stale_read = asyncio.create_task(users.get_user(1))
    assert await write
    client.execute_command = send
    assert await users.get_user(1) == {"v": "new"}
    assert await stale_read == {"v": "old"}
    assert await users.get_user(1) == {"v": "new"}


async def test_a_loader_overtaken_by_a_write_does_not_store(
    manager: CacheManager, server: Server
) -> None:
    users = UserCacheService(manager)
    started = asyncio.Event()

    async def slow_loader() -> dict[str, Any]:
        started.set()
        await asyncio.sleep(0.2)
        return {"v": "loaded from an old database row"}

    flight = asyncio.create_task(users.get_or_set_user(3, slow_loader))
    await started.wait()
    server.cli("CACHE.SETUSER", "3", '{"v": "written meanwhile"}')
    assert await flight == {"v": "loaded from an old database row"}
    assert server.cli("GET", "user:3") == '{"v": "written meanwhile"}'


async def test_ids_with_braces_are_distinct_keys(manager: CacheManager) -> None:
    users = UserCacheService(manager)
    await users.set_user(42, {"who": "42"})
    await users.set_user("{4}2", {"who": "{4}2"})
    for _ in range(3):
        assert await users.get_user(42) == {"who": "42"}
        assert await users.get_user("{4}2") == {"who": "{4}2"}
    await manager.set("search:{x}abc", "B")
    await manager.set("search:abc", "A")
    assert await manager.get("search:{x}abc") == "B"
    assert await manager.get("search:abc") == "A"


async def test_close_empties_the_tier_and_closes_connections(fresh_server: Server) -> None:
    server = fresh_server  # no other test's connections

    def clients() -> int:
        return sum(1 for line in server.cli("CLIENT", "LIST").splitlines() if line)

    base = clients()
    m = CacheManager(server.url, ping_interval=0.2)
    await m.start()
    users = UserCacheService(m)
    await users.set_user(3, {"v": 1})
    await asyncio.gather(*(users.get_user(i) for i in range(20)))
    assert clients() > base
    await m.close()
    assert not m.tier_live and len(m.memory_cache) == 0
    assert await eventually(lambda: clients() == base)
