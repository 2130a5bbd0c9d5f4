"""A second OS process with its own CacheManager, driven over stdin by
test_processes.py and by the benchmark.

Protocol, one line each way per round: the parent writes ``<version>
<unix time of the write's reply>``; the child waits until its tier has taken
the invalidation, reads the user (which must now be that version), caches it
again, and answers ``ok <ms from the write's reply to the drop>`` or
``stale <what it read>``."""

from __future__ import annotations

import asyncio
import sys
import time

from redis_cachekit import CacheManager, UserCacheService


async def main(url: str, user_id: int) -> None:
    async with CacheManager(url, ping_interval=0.2) as m:
        users = UserCacheService(m)
        tier = m.memory_cache
        dropped_at = 0.0
        invalidate = tier.invalidate

        def recording(key: str, *, local: bool = False) -> None:
            nonlocal dropped_at
            if key == f"user:{user_id}" and not local:
                dropped_at = time.time()
            invalidate(key, local=local)

        tier.invalidate = recording  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()

        async def cache_again() -> None:
            for _ in range(1000):
                await users.get_user(user_id)
                if f"user:{user_id}" in tier:
                    return
                await asyncio.sleep(0.001)
            raise RuntimeError("the entry was never cached")

        await cache_again()
        print("ready", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                return
            version, replied = line.split()
            deadline = time.monotonic() + 5
            while f"user:{user_id}" in tier and time.monotonic() < deadline:
                await asyncio.sleep(0.0002)
            value = await users.get_user(user_id)
            if value != {"v": int(version)}:
                print(f"stale {value}", flush=True)
                continue
            await cache_again()
            print(f"ok {max(0.0, dropped_at - float(replied)) * 1000:.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
