"""RateLimiter's calls for several rules, several limiters, refunds and the
compact answer, and the original limiter's state taken over."""

from __future__ import annotations

import asyncio

import pytest
import seed_services as seed
from servers import Server

from redis_cachekit import CacheManager, RateLimiter, RateLimiterError


async def test_acquire_answers_the_wait(manager: CacheManager) -> None:
    limiter = RateLimiter(manager)
    assert await limiter.acquire("a1", 1, 1, action="chat") == 0
    wait = await limiter.acquire("a1", 1, 1, action="chat")
    assert 1 <= wait <= 1_000
    assert await limiter.acquire("a1", 1, 1, action="chat", cost=2) == -1
    await asyncio.sleep(wait / 1000)
    assert await limiter.acquire("a1", 1, 1, action="chat") == 0
    # Under the server's policy (upload:5/60).
    assert [await limiter.acquire("a2", action="upload") for _ in range(5)] == [0] * 5
    assert await limiter.acquire("a2", action="upload") > 59_000
    with pytest.raises(ValueError):
        await limiter.acquire("a3", 5)


async def test_several_rules_all_must_allow(manager: CacheManager) -> None:
    limiter = RateLimiter(manager)
    rules = [(2, 1), (3, 60)]
    first = await limiter.is_allowed_rules("r1", rules, action="search")
    assert first["allowed"] is True and first["limit"] == 2 and first["remaining"] == 1
    await limiter.is_allowed_rules("r1", rules, action="search")
    denied = await limiter.is_allowed_rules("r1", rules, action="search")
    assert denied["allowed"] is False and denied["limit"] == 2
    assert 1 <= denied["retry_after_ms"] <= 1_000
    await asyncio.sleep(denied["retry_after_ms"] / 1000)
    assert (await limiter.is_allowed_rules("r1", rules, action="search"))["allowed"] is True
    denied = await limiter.is_allowed_rules("r1", rules, action="search")
    assert denied["limit"] == 3 and denied["retry_after_ms"] > 57_000
    with pytest.raises(ValueError):
        await limiter.is_allowed_rules("r1", [])


async def test_is_allowed_all_records_in_every_limiter_or_none(
    manager: CacheManager, server: Server
) -> None:
    server.cli(
        "CONFIG", "SET", "cachekit.ratelimit-policies", "tg_chat:1/1 tg_group:20/60 tg_global:30/1"
    )
    try:
        limiter = RateLimiter(manager)
        pairs = [("tg_chat", "12345"), ("tg_group", "-100123"), ("tg_global", "bot")]
        ok = await limiter.is_allowed_all(pairs)
        assert ok == {
            "allowed": True,
            "retry_after_ms": 0,
            "blocking": -1,
            "remaining": [0, 19, 29],
        }
        denied = await limiter.is_allowed_all(pairs)
        assert denied["allowed"] is False and denied["blocking"] == 0
        assert 1 <= denied["retry_after_ms"] <= 1_000
        assert denied["remaining"] == [0, 19, 29]
        info = await limiter.get_rate_limit_info("bot", action="tg_global")
        assert info["current_requests"] == 1
        with pytest.raises(RateLimiterError, match="no rate limit policy"):
            await limiter.is_allowed_all([("nope", "x")])
        with pytest.raises(ValueError):
            await limiter.is_allowed_all([])
    finally:
        server.cli(
            "CONFIG",
            "SET",
            "cachekit.ratelimit-policies",
            "default:100/60 search:20/60 upload:5/60",
        )


async def test_refund_takes_back_the_newest(manager: CacheManager) -> None:
    limiter = RateLimiter(manager)
    for _ in range(3):
        await limiter.is_allowed("f1", 3, 60)
    assert (await limiter.is_allowed("f1", 3, 60))["allowed"] is False
    assert await limiter.refund("f1", cost=2) == 2
    assert (await limiter.is_allowed("f1", 3, 60))["current_count"] == 2
    assert await limiter.refund("f1", cost=10) == 2
    assert await limiter.refund("f1") == 0


async def test_the_original_limiters_state_is_taken_over(server: Server) -> None:
    """The original RateLimiter writes json.dumps(list of Unix seconds) with
    SETEX; the module counts those requests and converts on its first write."""
    old = seed.CacheManager(server.url)
    try:
        original = seed.RateLimiter(old)  # type: ignore[no-untyped-call]
        for _ in range(3):
            assert (await original.is_allowed("moved", 5, 60, action="search"))["allowed"]  # type: ignore[no-untyped-call]
    finally:
        await old.redis_client.aclose()
    raw = server.cli("GET", "rate_limit:search:moved")
    assert raw.startswith("[")
    async with CacheManager(server.url) as manager:
        limiter = RateLimiter(manager)
        info = await limiter.get_rate_limit_info("moved", action="search")
        assert info["current_requests"] == 3
        results = [await limiter.is_allowed("moved", 5, 60, action="search") for _ in range(3)]
        assert [r["allowed"] for r in results] == [True, True, False]
        assert results[0]["current_count"] == 4
        converted = await manager.redis_client.get("rate_limit:search:moved")
        assert converted is not None and converted[:1] == b"\xc1"
