"""Two OS processes: a write in one is never served stale by the other once
the invalidation has arrived."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from servers import Server

from redis_cachekit import CacheManager, UserCacheService

CHILD = Path(__file__).with_name("tier_child.py")


async def test_a_write_in_one_process_is_seen_by_the_other(server: Server) -> None:
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
        try:
            assert child.stdout.readline().strip() == "ready"
            latencies = []
            for v in range(1, 41):
                if v % 10 == 0:  # now and then a raw write from outside
                    server.cli("SET", "user:77", f'{{"v": {v}}}')
                else:
                    assert await users.set_user(77, {"v": v})
                replied = time.time()
                child.stdin.write(f"{v} {replied}\n")
                child.stdin.flush()
                answer = child.stdout.readline().split()
                assert answer and answer[0] == "ok", answer
                latencies.append(float(answer[1]))
            print(f"invalidation latency ms: max {max(latencies):.3f}")
        finally:
            child.stdin.close()
            child.wait(timeout=10)
        assert child.returncode == 0
