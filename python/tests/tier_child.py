"""A second OS process with its own CacheManager, driven over stdin by
test_processes.py and by the benchmark.

It prints ``ready <its tracking connection's client id>``, then answers one
line per line read:

- ``expect <json> <unix time of the change's reply>``: waits until its tier
  has dropped the user (5 s at most), reads it, which must now give <json>
  (``null`` for none), caches it again, and answers ``ok <ms from the
  change's reply to the drop>``, or ``stale <what it read>``;
- ``killed``: waits until the tier is off and empty after its tracking
  connection was killed, then until tracking is back: ``ok``, or ``stuck``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable

from redis_cachekit import CacheManager, UserCacheService


async def main(url: str, user_id: int) -> None:
    key = f"user:{user_id}"
    async with CacheManager(url, ping_interval=0.2) as m:
        users = UserCacheService(m)
        tier = m.memory_cache
        dropped_at = 0.0
        invalidate = tier.invalidate

        def recording(k: str, *, local: bool = False) -> None:
            nonlocal dropped_at
            if k == key and not local:
                dropped_at = time.time()
            invalidate(k, local=local)

        tier.invalidate = recording  # type: ignore[method-assign,assignment]
        loop = asyncio.get_running_loop()

        async def cache_again() -> bool:
            for _ in range(1000):
                if await users.get_user(user_id) is None:
                    return False
                if key in tier:
                    return True
                await asyncio.sleep(0.001)
            return False

        async def until(cond: Callable[[], bool], seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if cond():
                    return True
                await asyncio.sleep(0.0002)
            return cond()

        await cache_again()
        tracker = m._tracker
        print(f"ready {tracker.client_id if tracker else 0}", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                return
            words = line.split(maxsplit=1)
            if words[0] == "killed":
                down = await until(lambda: not m.tier_live and len(tier) == 0, 5)
                up = await until(lambda: m.tier_live, 10)
                print("ok" if down and up else "stuck", flush=True)
                continue
            expected_text, replied = words[1].rsplit(maxsplit=1)
            expected = json.loads(expected_text)
            await until(lambda: key not in tier, 5)
            value = await users.get_user(user_id)
            if value != expected:
                print(f"stale {value}", flush=True)
                continue
            if expected is not None:
                await cache_again()
            print(f"ok {max(0.0, dropped_at - float(replied)) * 1000:.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
