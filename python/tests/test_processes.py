"""Two OS processes: whatever changes a cached key (the other process's
write, a raw SET, EXPIRE, DEL or FLUSHALL from redis-cli, the module's
CACHE.INVALIDATEUSER) is never served stale once the invalidation has
arrived; killing the tracking connection empties the tier."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from servers import Server

from redis_cachekit import CacheManager, UserCacheService

CHILD = Path(__file__).with_name("tier_child.py")


async def test_a_change_in_one_process_is_seen_by_the_other(server: Server) -> None:
    async with CacheManager(server.url) as m:
        users = UserCacheService(m)
        await users.set_user(77, {"v": 0})
        child = subprocess.Popen(
            [sys.executable, str(CHILD), server.url, "77"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        stdin, stdout = child.stdin, child.stdout

        def ask(line: str) -> list[str]:
            stdin.write(line + "\n")
            stdin.flush()
            return stdout.readline().split()

        async def change(do: Callable[[], Awaitable[Any] | Any], expected: object) -> float:
            result = do()
            if isinstance(result, Awaitable):
                await result
            answer = ask(f"expect {json.dumps(expected)} {time.time()}")
            assert answer and answer[0] == "ok", (expected, answer)
            return float(answer[1])

        try:
            ready = stdout.readline().split()
            assert ready[0] == "ready"
            await change(lambda: users.set_user(77, {"v": 1}), {"v": 1})
            await change(lambda: server.cli("SET", "user:77", '{"v": 2}'), {"v": 2})
            await change(lambda: server.cli("EXPIRE", "user:77", "1000"), {"v": 2})
            await change(lambda: server.cli("DEL", "user:77"), None)
            await change(lambda: users.set_user(77, {"v": 3}), {"v": 3})
            await change(lambda: server.cli("FLUSHALL"), None)
            await change(lambda: users.set_user(77, {"v": 4}), {"v": 4})
            await change(lambda: server.cli("CACHE.INVALIDATEUSER", "77"), None)
            await change(lambda: users.set_user(77, {"v": 5}), {"v": 5})
            server.cli("CLIENT", "KILL", "ID", ready[1])
            assert ask("killed") == ["ok"]
            # Tracking is back: changes are seen again.
            latencies = [
                await change(lambda v=v: users.set_user(77, {"v": v}), {"v": v})  # type: ignore[misc]
                for v in range(6, 40)
            ]
            print(f"invalidation latency ms: max {max(latencies):.3f}")
        finally:
            stdin.close()
            child.wait(timeout=10)
        assert child.returncode == 0
