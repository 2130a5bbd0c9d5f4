"""`make bench-python`: what the memory tier buys a bot, measured against a
real Redis 7.0 with the module on loopback.

1. Latency of one read: a memory-tier hit, a CACHE.GETUSER round trip, and
   GET + json.loads (p50/p99 over many sequential reads).
2. A bot-like workload: users drawn from a Zipf distribution; each update is
   a rate-limit check, a user read and a session read; now and then the
   session is written (which invalidates it everywhere). 10,000 updates, 50
   at once. Run with the tier and without it (memory_cache_size=0), each with
   the limiter checked by `is_allowed` (the 8-field map) and by `acquire`
   (one integer), and the original services' way (their client-side list
   limiter and a memory dict that no other process invalidates). Round trips
   per update, p50/p99 per update, updates/s, the tier's hit ratio.
3. Invalidation latency between two OS processes: from a write's reply in
   one to the other dropping its entry (p50/p99).

Figures vary with the machine and its load: compare rows of one run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import seed_services as seed  # noqa: E402
from redis.asyncio.connection import Connection  # noqa: E402
from servers import Server  # noqa: E402

from redis_cachekit import CacheManager, RateLimiter, UserCacheService  # noqa: E402

UPDATES = int(os.environ.get("BENCH_UPDATES", "10000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "50"))
USERS = int(os.environ.get("BENCH_USERS", "400"))
ZIPF_S = float(os.environ.get("BENCH_ZIPF_S", "1.1"))
WRITE_RATIO = float(os.environ.get("BENCH_WRITE_RATIO", "0.02"))
LATENCY_SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", "5000"))
ROUNDS = int(os.environ.get("BENCH_INVALIDATION_ROUNDS", "300"))


class RoundTrips:
    """Counts requests sent on the package's and the original's connections
    (a pipeline is one)."""

    count = 0

    @classmethod
    def install(cls) -> None:
        original = Connection.send_packed_command

        async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
            cls.count += 1
            await original(self, command, check_health)

        Connection.send_packed_command = counting  # type: ignore[method-assign,assignment]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(measured: float, target: float) -> str:
    """`measured` against a target it must reach (both "higher is better")."""
    if measured >= target:
        return "met"
    return f"missed by {(1 - measured / target) * 100:.0f}%"


def us(x: float) -> str:
    return f"{x * 1e6:9.1f} µs"


async def timed(n: int, op: Callable[[], Awaitable[Any]]) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await op()
        out.append(time.perf_counter() - t)
    return out


async def read_latency(url: str) -> None:
    print("\n## One read (sequential, p50 / p99)\n")
    print("| read | p50 | p99 |")
    print("|---|---|---|")
    async with CacheManager(url) as m:
        users = UserCacheService(m)
        await users.set_user(1, {"id": 1, "first_name": "Анна", "department": "HR", "roles": [1]})
        for _ in range(1000):
            await users.get_user(1)
            if "user:1" in m.memory_cache:
                break
            await asyncio.sleep(0.001)
        else:
            raise RuntimeError("the memory tier never came up")
        r = m.redis_client

        async def module_get() -> Any:
            return json.loads(await r.execute_command("CACHE.GETUSER", "1"))

        async def raw_get() -> Any:
            return json.loads(await r.get("user:1"))

        rows = [
            ("memory-tier hit (`get_user`)", lambda: users.get_user(1)),
            ("`CACHE.GETUSER` round trip + `json.loads`", module_get),
            ("`GET` + `json.loads`", raw_get),
        ]
        p50s = {}
        for name, op in rows:
            await timed(200, op)  # warm up
            s = await timed(LATENCY_SAMPLES, op)
            p50s[name] = pct(s, 0.5)
            print(f"| {name} | {us(pct(s, 0.5))} | {us(pct(s, 0.99))} |")
        hit, rt = p50s[rows[0][0]], p50s[rows[1][0]]
        print(
            f"\nA tier hit is {rt / hit:.0f}x faster (p50) than a CACHE.GETUSER round trip "
            f"(target 30x: {verdict(rt / hit, 30)})."
        )


def zipf_users(rng: random.Random, n: int) -> list[int]:
    weights = [1 / (i**ZIPF_S) for i in range(1, USERS + 1)]
    return rng.choices(range(1, USERS + 1), weights=weights, k=n)


class Workload:
    """One update: a limiter check, a user read, a session read, and now and
    then a session write, through either the package's services or the
    original's (they share names and signatures)."""

    def __init__(self, users: Any, check: Callable[[str], Awaitable[Any]]) -> None:
        self.users = users
        self.check = check
        self.latencies: list[float] = []

    async def update(self, uid: int, write: bool) -> None:
        await self.check(str(uid))
        await self.users.get_user(uid)
        await self.users.get_user_session(uid)
        if write:
            await self.users.set_user_session(uid, {"state": "menu", "t": time.time()})

    async def run(self, ids: list[int], writes: list[bool]) -> dict[str, Any]:
        queue = list(zip(ids, writes, strict=True))
        queue.reverse()

        async def worker() -> None:
            while queue:
                uid, write = queue.pop()
                t = time.perf_counter()
                await self.update(uid, write)
                self.latencies.append(time.perf_counter() - t)

        before = RoundTrips.count
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
        return {
            "round_trips": (RoundTrips.count - before) / len(ids),
            "p50": pct(self.latencies, 0.5),
            "p99": pct(self.latencies, 0.99),
            "rate": len(ids) / elapsed,
        }


async def workload(url: str) -> None:
    print(
        f"\n## Bot-like workload: {UPDATES} updates, {CONCURRENCY} at once, {USERS} users "
        f"(Zipf s={ZIPF_S}), {WRITE_RATIO:.0%} write the session\n"
    )
    async with CacheManager(url) as loader:
        users = UserCacheService(loader)
        for uid in range(1, USERS + 1):
            await users.set_user(uid, {"id": uid, "first_name": f"user {uid}", "roles": [1, 2]})
            await users.set_user_session(uid, {"state": "start"})
    rng = random.Random(1)
    ids = zipf_users(rng, UPDATES)
    writes = [rng.random() < WRITE_RATIO for _ in ids]
    print("| run | round trips / update | p50 / update | p99 / update | updates/s | tier hits |")
    print("|---|---|---|---|---|---|")
    results = {}
    runs: list[tuple[str, int, str]] = [
        ("package, memory tier", 1000, "is_allowed"),
        ("package, no tier", 0, "is_allowed"),
        ("package, memory tier, limiter by `acquire`", 1000, "acquire"),
        ("package, no tier, limiter by `acquire`", 0, "acquire"),
    ]
    for name, size, how in runs:
        async with CacheManager(url, memory_cache_size=size) as m:
            limiter = RateLimiter(m)

            async def by_check(ident: str, limiter: RateLimiter = limiter) -> Any:
                return await limiter.is_allowed(ident, 1000, 60, action="bench")

            async def by_acquire(ident: str, limiter: RateLimiter = limiter) -> Any:
                return await limiter.acquire(ident, 1000, 60, action="bench")

            check = by_check if how == "is_allowed" else by_acquire
            run = await Workload(UserCacheService(m), check).run(ids, writes)
            st = m.cache_stats
            reads = st["hits"] + st["misses"]
            run["hits"] = f"{st['memory_hits'] / reads:.0%}" if reads else "-"
            results[name] = run
    old = seed.CacheManager(url)
    try:
        seed_limiter = seed.RateLimiter(old)

        async def seed_check(ident: str) -> Any:
            return await seed_limiter.is_allowed(ident, 1000, 60, action="bench_seed")

        run = await Workload(seed.UserCacheService(old), seed_check).run(ids, writes)
        st = old.cache_stats
        reads = st["hits"] + st["misses"]
        run["hits"] = f"{st['memory_hits'] / reads:.0%}" if reads else "-"
        results["original services (incoherent dict, racy limiter)"] = run
    finally:
        await old.redis_client.aclose()
    for name, r in results.items():
        print(
            f"| {name} | {r['round_trips']:.2f} | {r['p50'] * 1e3:.2f} ms | "
            f"{r['p99'] * 1e3:.2f} ms | {r['rate']:,.0f} | {r['hits']} |"
        )
    print()
    for suffix, what in (("", "`is_allowed`"), (", limiter by `acquire`", "`acquire`")):
        ratio = (
            results[f"package, memory tier{suffix}"]["rate"]
            / results[f"package, no tier{suffix}"]["rate"]
        )
        print(
            f"With the tier, limiter by {what}: {ratio:.2f}x the updates/s of the run "
            f"without it (target 2x at a 90% hit ratio: {verdict(ratio, 2.0)})."
        )


async def invalidation_latency(url: str) -> None:
    print(f"\n## Invalidation between two processes ({ROUNDS} writes)\n")
    child_script = HERE.parent / "tests" / "tier_child.py"
    async with CacheManager(url) as m:
        users = UserCacheService(m)
        await users.set_user(77, {"v": 0})
        child = subprocess.Popen(
            [sys.executable, str(child_script), url, "77"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        lat: list[float] = []
        stale = 0
        try:
            if not child.stdout.readline().startswith("ready"):
                raise RuntimeError("child did not start")
            for v in range(1, ROUNDS + 1):
                await users.set_user(77, {"v": v})
                child.stdin.write(f'expect {{"v": {v}}} {time.time()}\n')
                child.stdin.flush()
                answer = child.stdout.readline().split()
                if answer[0] == "ok":
                    lat.append(float(answer[1]))
                else:
                    stale += 1
        finally:
            child.stdin.close()
            child.wait(timeout=10)
    print("| from a write's reply to the other process dropping the entry | value |")
    print("|---|---|")
    print(f"| p50 | {statistics.median(lat):.3f} ms |")
    print(f"| p99 | {pct(lat, 0.99):.3f} ms (target 5 ms: {verdict(5.0, pct(lat, 0.99))}) |")
    print(f"| max | {max(lat):.3f} ms |")
    print(f"| stale reads after the drop | {stale} |")


async def main() -> None:
    RoundTrips.install()
    server = Server("redis")
    try:
        version = server.cli("INFO", "server").split("redis_version:")[1].split()[0]
        python = sys.version.split()[0]
        print(f"# redis-cachekit benchmark: redis-server {version} on loopback, Python {python}")
        await read_latency(server.url)
        await workload(server.url)
        await invalidation_latency(server.url)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
