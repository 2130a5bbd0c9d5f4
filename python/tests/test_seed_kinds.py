"""Users with roles, popular documents and embeddings: the original
``DatabaseOptimizer``'s keys, values written by either side read by the other,
embeddings round-tripped through numpy, key names against ``CACHE.KEY``."""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pytest
from servers import Server

from redis_cachekit import (
    CacheManager,
    DocumentCacheService,
    EmbeddingCacheService,
    KeyScheme,
    UserCacheService,
)


def seed_user_roles_key(user_id: int) -> str:
    # DatabaseOptimizer.get_user_with_roles
    return f"user_with_roles:{user_id}"


def seed_documents_key(limit: int, category: str | None) -> str:
    # DatabaseOptimizer.get_popular_documents
    return f"popular_documents:{limit}:{category or 'all'}"


async def test_users_with_roles_at_the_seed_key(manager: CacheManager, server: Server) -> None:
    users = UserCacheService(manager)
    assert await users.get_user_with_roles(42) is None
    data = {"id": 42, "roles": [{"name": "admin", "permissions": ["read"]}]}
    assert await users.set_user_with_roles(42, data) is True
    assert json.loads(server.cli("GET", seed_user_roles_key(42))) == data
    assert 1790 <= int(server.cli("TTL", seed_user_roles_key(42))) <= 1800
    assert await users.get_user_with_roles(42) == data
    # What the original code wrote (SETEX with json.dumps), the package reads.
    server.cli("SETEX", seed_user_roles_key(7), "1800", json.dumps({"id": 7, "roles": []}))
    assert await users.get_user_with_roles(7) == {"id": 7, "roles": []}
    assert await users.invalidate_user_cache(42) is True
    assert await users.get_user_with_roles(42) is None


async def test_popular_documents_at_the_seed_key(manager: CacheManager, server: Server) -> None:
    docs = DocumentCacheService(manager)
    assert await docs.get_popular_documents() is None
    top = [{"id": 1, "title": "Отпуск", "view_count": 10}]
    assert await docs.set_popular_documents(top) is True
    assert json.loads(server.cli("GET", seed_documents_key(10, None))) == top
    assert 7190 <= int(server.cli("TTL", seed_documents_key(10, None))) <= 7200
    assert await docs.get_popular_documents(10) == top
    server.cli("SETEX", seed_documents_key(5, "hr"), "600", json.dumps([{"id": 2}]))
    assert await docs.get_popular_documents(5, "hr") == [{"id": 2}]
    assert await docs.get_popular_documents(5, "it") is None
    with pytest.raises(ValueError):
        await docs.get_popular_documents(0)
    docs.document_ttl = 60
    assert await docs.set_popular_documents([], 3, "x") is True
    assert 50 <= int(server.cli("TTL", seed_documents_key(3, "x"))) <= 60


async def test_embeddings_round_trip_through_numpy(manager: CacheManager, server: Server) -> None:
    emb = EmbeddingCacheService(manager)
    assert await emb.get_embedding("как оформить отпуск", "text-embedding-3-small") is None
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(1536).astype("<f4")
    assert await emb.set_embedding(
        "как оформить отпуск", "text-embedding-3-small", vector.tobytes()
    )
    got = await emb.get_embedding("как оформить отпуск", "text-embedding-3-small")
    assert got is not None
    assert np.array_equal(np.frombuffer(got, "<f4"), vector)
    # A second read is served by the memory tier, still exact.
    again = await emb.get_embedding("как оформить отпуск", "text-embedding-3-small")
    assert again == vector.tobytes()
    # A list of floats: each rounded once to float32.
    values = [0.1, -2.5, 1e-7, 3.4e38]
    assert await emb.set_embedding("q", "m", values)
    got = await emb.get_embedding("q", "m")
    assert got is not None
    assert np.array_equal(np.frombuffer(got, "<f4"), np.array(values, dtype="<f4"))
    # The server's JSON form reads back as the same float32 values.
    raw = await manager.redis_client.execute_command(
        "CACHE.GETEMBEDDING", "q", "m", "FORMAT", "JSON"
    )
    assert np.array_equal(np.array(json.loads(raw), dtype="<f4"), np.array(values, dtype="<f4"))
    # Stored packed at the module's key, 4 bytes a dimension.
    key = manager.keys.embedding("q", "m")
    assert int(server.cli("STRLEN", key)) == 16
    # An update anywhere is seen here (the tier drops the entry).
    await manager.redis_client.execute_command(
        "CACHE.SETEMBEDDING", "q", "m", struct.pack("<2f", 1.0, 2.0), "FORMAT", "FP32"
    )
    for _ in range(100):
        got = await emb.get_embedding("q", "m")
        if got == struct.pack("<2f", 1.0, 2.0):
            break
    assert got == struct.pack("<2f", 1.0, 2.0)
    # Bad vectors are refused before any round trip.
    for bad in ([float("nan")], [float("inf")], [1e39], b"abc"):
        with pytest.raises(ValueError):
            await emb.set_embedding("q", "m", bad)
    # The server refuses what the package lets through (no dimensions).
    assert await emb.set_embedding("q", "m", []) is False


@pytest.mark.parametrize("style", ["plain", "tagged"])
async def test_new_key_names_match_the_server(server: Server, style: str) -> None:
    server.cli("CONFIG", "SET", "cachekit.key-style", style)
    async with CacheManager(server.url, ping_interval=0.2) as m:
        keys: KeyScheme = m.keys
        r = m.redis_client
        rng = random.Random(11)
        alphabet = "abc xyz:{-_абв😀"
        for _ in range(40):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            uid = text.replace("}", "") or "1"
            model = rng.choice(["text-embedding-3-small", "m", "модель"])
            limit = rng.randint(1, 1000)
            raw = await r.execute_command("CACHE.KEY", "embedding", text, model)
            assert raw.decode() == keys.embedding(text, model)
            raw = await r.execute_command("CACHE.KEY", "user_with_roles", uid)
            assert raw.decode() == keys.user_with_roles(uid)
            raw = await r.execute_command("CACHE.KEY", "documents", limit, uid)
            assert raw.decode() == keys.documents(limit, uid)
        if style == "plain":
            assert keys.user_with_roles("5") == seed_user_roles_key(5)
            assert keys.documents(10, None) == seed_documents_key(10, None)
            assert keys.documents(3, "hr") == seed_documents_key(3, "hr")
