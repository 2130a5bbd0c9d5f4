"""The original services' call patterns, on the package and beside the
original code on one server; key names against the server's CACHE.KEY."""

from __future__ import annotations

import json
import random
import string

import pytest
import seed_services as seed
from servers import Server

from redis_cachekit import (
    CacheManager,
    KeyScheme,
    QueryCacheService,
    TranslationCacheService,
    UserCacheService,
)


async def test_user_service_call_patterns(manager: CacheManager, server: Server) -> None:
    users = UserCacheService(manager)
    assert await users.get_user(42) is None
    assert await users.set_user(42, {"id": 42, "first_name": "Анна"}) is True
    assert await users.get_user(42) == {"id": 42, "first_name": "Анна"}
    assert await users.set_user_permissions(42, ["read", "search"]) is True
    assert await users.get_user_permissions(42) == ["read", "search"]
    assert await users.set_user_session(42, {"state": "menu"}) is True
    assert await users.get_user_session(42) == {"state": "menu"}
    # The server's TTLs (cachekit.user-ttl 1800, session-ttl 3600).
    assert 1790 <= int(server.cli("TTL", "user:42")) <= 1800
    assert 3590 <= int(server.cli("TTL", "session:42")) <= 3600
    users.user_ttl = 60
    await users.set_user(42, {"id": 42})
    assert 50 <= int(server.cli("TTL", "user:42")) <= 60
    assert await users.invalidate_user_cache(42) is True
    assert await users.get_user(42) is None
    assert await users.get_user_permissions(42) is None
    assert await users.get_user_session(42) is None
    assert server.cli("EXISTS", "user:42", "user_permissions:42", "session:42") == "0"
    # The server counted every read in its namespaces.
    stats = server.cli("CACHE.STATS").split("\n")
    assert stats[stats.index("hits") + 1] == "3"


async def test_query_service_call_patterns(manager: CacheManager, server: Server) -> None:
    q = QueryCacheService(manager)
    results = {"documents": [1, 2], "total": 2}
    assert await q.get_search_results("отпуск", 7) is None
    assert await q.set_search_results("отпуск", 7, results, {"b": 1, "a": "x"})
    # Equal filters in another order find the same entry.
    assert await q.get_search_results("отпуск", 7, {"a": "x", "b": 1}) == results
    assert await q.get_search_results("отпуск", 7) is None
    key = q._generate_search_cache_key("отпуск", 7, {"a": "x", "b": 1})
    assert server.cli("EXISTS", key) == "1"
    assert 1790 <= int(server.cli("TTL", key)) <= 1800
    assert await q.set_rag_response("q", 7, "ctx1", {"answer": "a"})
    assert await q.get_rag_response("q", 7, "ctx1") == {"answer": "a"}
    assert await q.get_rag_response("q", 7, "ctx2") is None


async def test_translation_service_call_patterns(manager: CacheManager, server: Server) -> None:
    t = TranslationCacheService(manager)
    assert await t.get_translation("Привет", "ru", "en") is None
    assert await t.set_translation("Привет", "ru", "en", {"text": "Hello"})
    assert await t.get_translation("Привет", "ru", "en") == {"text": "Hello"}
    key = t._generate_translation_key("Привет", "ru", "en")
    assert server.cli("GET", key) == '{"text": "Hello"}'


async def test_side_by_side_with_the_original_code(manager: CacheManager, server: Server) -> None:
    """The original services and the package read each other's writes."""
    old = seed.CacheManager(server.url)
    try:
        old_users, new_users = seed.UserCacheService(old), UserCacheService(manager)
        await old_users.set_user(1, {"from": "seed"})
        assert await new_users.get_user(1) == {"from": "seed"}
        await new_users.set_user(2, {"from": "package"})
        assert await seed.UserCacheService(seed.CacheManager(server.url)).get_user(2) == {
            "from": "package"
        }
        old_q, new_q = seed.QueryCacheService(old), QueryCacheService(manager)
        filters = {"dept": "hr", "year": 2024, "tags": ["a", "б"]}
        await old_q.set_search_results("найти", 3, {"r": 1}, filters)
        assert await new_q.get_search_results("найти", 3, filters) == {"r": 1}
        await old_q.set_rag_response("why", 3, "h", {"a": 2})
        assert await new_q.get_rag_response("why", 3, "h") == {"a": 2}
        old_t, new_t = seed.TranslationCacheService(old), TranslationCacheService(manager)
        await new_t.set_translation("text", "en", "ru", {"t": "текст"})
        fresh = seed.TranslationCacheService(seed.CacheManager(server.url))
        assert await fresh.get_translation("text", "en", "ru") == {"t": "текст"}
        assert old_t._generate_translation_key("x", "a", "b") == new_t._generate_translation_key(
            "x", "a", "b"
        )
    finally:
        await old.redis_client.aclose()


def _random_text(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + " :{}-_" + "абвгд€😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))


@pytest.mark.parametrize("style", ["plain", "tagged"])
async def test_key_names_match_the_server(server: Server, style: str) -> None:
    server.cli("CONFIG", "SET", "cachekit.key-style", style)
    async with CacheManager(server.url, ping_interval=0.2) as m:
        assert m.key_style == style
        keys: KeyScheme = m.keys
        rng = random.Random(7)
        r = m.redis_client

        async def server_key(*args: str) -> str:
            raw: bytes = await r.execute_command("CACHE.KEY", *args)
            return raw.decode()

        for _ in range(40):
            uid = _random_text(rng).replace("}", "") or "1"
            text = _random_text(rng)
            for kind, build in (
                ("user", keys.user),
                ("permissions", keys.permissions),
                ("session", keys.session),
            ):
                assert await server_key(kind, uid) == build(uid)
            filters = {_random_text(rng): rng.choice([1, 2.5, "x", None, [1, "y"]])}
            assert await server_key(
                "search", text, uid, "FILTERS", json.dumps(filters)
            ) == keys.search(text, uid, filters)
            assert await server_key("search", text, uid) == keys.search(text, uid, None)
            assert await server_key("rag", text, uid, "ctx") == keys.rag(text, uid, "ctx")
            assert await server_key("translation", text, "ru", "en") == keys.translation(
                text, "ru", "en"
            )
            assert await server_key("ratelimit", uid, "ACTION", "search") == keys.ratelimit(
                "search", uid
            )


async def test_the_tier_follows_a_key_style_change(manager: CacheManager, server: Server) -> None:
    users = UserCacheService(manager)
    await users.set_user(3, {"v": 1})
    assert await users.get_user(3) == {"v": 1}
    server.cli("CONFIG", "SET", "cachekit.key-style", "tagged")
    # A write under the new style invalidates the entry read under the old
    # one (both have one canonical name), and the next read learns the style.
    await users.set_user(3, {"v": 2})
    assert await users.get_user(3) == {"v": 2}
    assert await users.get_user(3) == {"v": 2}
    assert server.cli("GET", "user:{3}") == '{"v": 2}'
