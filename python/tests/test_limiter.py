"""RateLimiter: the original's dict, exact under concurrency, fail closed or
open on an outage."""

from __future__ import annotations

import asyncio
import logging

import pytest
import seed_services as seed
from servers import Server

from redis_cachekit import CacheManager, RateLimiter, RateLimiterError

SEED_KEYS = {"allowed", "current_count", "limit", "reset_time", "retry_after", "remaining"}


async def test_the_original_dict_and_the_module_fields(manager: CacheManager) -> None:
    limiter = RateLimiter(manager)
    first = await limiter.is_allowed("u1", 2, 60, action="search")
    assert set(first) >= SEED_KEYS
    assert first["allowed"] is True and first["current_count"] == 1 and first["remaining"] == 1
    assert first["retry_after_ms"] == 0 and 59_000 < first["reset_after_ms"] <= 60_000
    await limiter.is_allowed("u1", 2, 60, action="search")
    denied = await limiter.is_allowed("u1", 2, 60, action="search")
    assert denied["allowed"] is False and denied["current_count"] == 2
    assert 59 <= denied["retry_after"] <= 60 and denied["remaining"] == 0
    info = await limiter.get_rate_limit_info("u1", action="search")
    assert info["current_requests"] == 2
    assert len(info["requests_timestamps"]) == 2
    assert all(
        ms // 1000 == s
        for ms, s in zip(info["timestamps_ms"], info["requests_timestamps"], strict=True)
    )
    assert info["limit"] == 2 and info["window_ms"] == 60_000
    other = await limiter.get_rate_limit_info("nobody")
    assert other["current_requests"] == 0 and other["requests_timestamps"] == []
    assert await limiter.reset("u1", action="search") is True
    assert (await limiter.is_allowed("u1", 2, 60, action="search"))["allowed"] is True


async def test_the_server_policy(manager: CacheManager) -> None:
    limiter = RateLimiter(manager)
    # upload:5/60 is a default policy.
    results = [await limiter.check_policy("u2", action="upload") for _ in range(6)]
    assert [r["allowed"] for r in results] == [True] * 5 + [False]
    assert results[0]["limit"] == 5


async def test_fifty_concurrent_checks_admit_exactly_the_limit(server: Server) -> None:
    async with (
        CacheManager(server.url) as a,
        CacheManager(server.url) as b,
    ):
        la, lb = RateLimiter(a), RateLimiter(b)
        calls = [(la if i % 2 else lb).is_allowed("hot", 20, 60) for i in range(50)]
        results = await asyncio.gather(*calls)
        assert sum(r["allowed"] for r in results) == 20
        assert sorted(r["current_count"] for r in results if r["allowed"]) == list(range(1, 21))


async def test_the_original_limiter_admits_too_many(server: Server) -> None:
    """The comparison the package exists for: the original read-modify-write
    limiter, 50 concurrent calls at limit 20, admits more than 20."""
    old = seed.CacheManager(server.url)
    try:
        limiter = seed.RateLimiter(old)
        results = await asyncio.gather(*(limiter.is_allowed("seed", 20, 60) for _ in range(50)))
        assert sum(r["allowed"] for r in results) > 20
    finally:
        await old.redis_client.aclose()


async def test_bad_arguments_raise_and_change_nothing(
    manager: CacheManager, server: Server
) -> None:
    limiter = RateLimiter(manager)
    with pytest.raises(ValueError):
        await limiter.is_allowed("u", 0, 60)
    with pytest.raises(ValueError):
        await limiter.is_allowed("u", 5, -1)
    with pytest.raises(TypeError):
        await limiter.is_allowed("u", "5", 60)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await limiter.is_allowed(None, 5, 60)  # type: ignore[arg-type]
    with pytest.raises(RateLimiterError, match="no rate limit policy"):
        await limiter.check_policy("u", action="unknown-action")
    server.cli("LPUSH", "rate_limit:default:w", "x")
    with pytest.raises(RateLimiterError, match="WRONGTYPE"):
        await limiter.is_allowed("w", 5, 60)
    assert server.cli("KEYS", "rate_limit:*") == "rate_limit:default:w"


async def test_an_outage_fails_closed_unless_fail_open(
    fresh_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    async with CacheManager(fresh_server.url) as m:
        closed, open_ = RateLimiter(m), RateLimiter(m, fail_open=True)
        assert (await closed.is_allowed("u", 1, 60))["allowed"]
        fresh_server.stop()
        with pytest.raises(RateLimiterError):
            await closed.is_allowed("u", 1, 60)
        with caplog.at_level(logging.WARNING, logger="redis_cachekit"):
            r = await open_.is_allowed("u", 1, 60)
        assert r["allowed"] is True and r["fail_open"] is True
        assert "fail_open" in caplog.text
        fresh_server.start()
        # Back, and exact again: the server kept nothing (no persistence), so
        # the first check is allowed and the second denied.
        assert (await closed.is_allowed("u", 1, 60))["allowed"] is True
        assert (await closed.is_allowed("u", 1, 60))["allowed"] is False
