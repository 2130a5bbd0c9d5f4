"""The original design's cache services, on the module's commands.

Each method keeps the original's name, signature and return shape. Keys,
TTLs and hit/miss statistics are the server's: a TTL attribute left at None
uses the module's configured TTL (``cachekit.user-ttl`` and friends); set it
to an int to send ``TTL <n>`` with every write, as the original did.
Reads go through the manager's memory tier.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from .manager import CacheManager, check_ttl

logger = logging.getLogger("redis_cachekit")

T = TypeVar("T")


def ident(value: object, what: str) -> str:
    """An id as the module takes it: an int (as the original's type hints
    say) or a non-empty str."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be an int (or a str id), got {type(value).__name__}")
    text = str(value)
    if not text:
        raise ValueError(f"{what} must not be empty")
    return text


def text_arg(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


class _Service:
    def __init__(self, cache_manager: CacheManager) -> None:
        self.cache = cache_manager

    async def _write(self, key: str, command: Sequence[Any], value: Any, ttl: int | None) -> bool:
        check_ttl(ttl)
        args: list[Any] = [*command, json.dumps(value, ensure_ascii=False)]
        if ttl:
            args += ["TTL", ttl]
        try:
            await self.cache.write(key, args)
            return True
        except Exception as e:
            logger.warning("cachekit: %s failed (%s)", command[0], e)
            return False

    async def _load_once(
        self,
        key: str,
        get: Callable[[], Awaitable[T | None]],
        loader: Callable[[], Awaitable[T]],
        store: Callable[[T], Awaitable[Any]],
    ) -> T | None:
        return await self.cache.load_once(key, get, loader, store, key)


class UserCacheService(_Service):
    def __init__(self, cache_manager: CacheManager) -> None:
        super().__init__(cache_manager)
        self.user_ttl: int | None = None
        self.session_ttl: int | None = None

    async def get_user(self, user_id: int | str) -> dict[str, Any] | None:
        uid = ident(user_id, "user_id")
        value: dict[str, Any] | None = await self.cache.read(
            self.cache.keys.user(uid), ("CACHE.GETUSER", uid)
        )
        return value

    async def set_user(self, user_id: int | str, user_data: dict[str, Any]) -> bool:
        uid = ident(user_id, "user_id")
        return await self._write(
            self.cache.keys.user(uid), ("CACHE.SETUSER", uid), user_data, self.user_ttl
        )

    async def get_user_permissions(self, user_id: int | str) -> list[str] | None:
        uid = ident(user_id, "user_id")
        value: list[str] | None = await self.cache.read(
            self.cache.keys.permissions(uid), ("CACHE.GETPERMISSIONS", uid)
        )
        return value

    async def set_user_permissions(self, user_id: int | str, permissions: list[str]) -> bool:
        uid = ident(user_id, "user_id")
        return await self._write(
            self.cache.keys.permissions(uid),
            ("CACHE.SETPERMISSIONS", uid),
            permissions,
            self.user_ttl,
        )

    async def get_user_session(self, telegram_id: int | str) -> dict[str, Any] | None:
        tid = ident(telegram_id, "telegram_id")
        value: dict[str, Any] | None = await self.cache.read(
            self.cache.keys.session(tid), ("CACHE.GETSESSION", tid)
        )
        return value

    async def set_user_session(self, telegram_id: int | str, session_data: dict[str, Any]) -> bool:
        tid = ident(telegram_id, "telegram_id")
        return await self._write(
            self.cache.keys.session(tid),
            ("CACHE.SETSESSION", tid),
            session_data,
            self.session_ttl,
        )

    async def get_user_with_roles(self, user_id: int | str) -> dict[str, Any] | None:
        """The user with roles cached at ``user_with_roles:<id>`` (the original
        ``DatabaseOptimizer``'s key), or None."""
        uid = ident(user_id, "user_id")
        value: dict[str, Any] | None = await self.cache.read(
            self.cache.keys.user_with_roles(uid), ("CACHE.GETUSERROLES", uid)
        )
        return value

    async def set_user_with_roles(self, user_id: int | str, user_data: dict[str, Any]) -> bool:
        uid = ident(user_id, "user_id")
        return await self._write(
            self.cache.keys.user_with_roles(uid),
            ("CACHE.SETUSERROLES", uid),
            user_data,
            self.user_ttl,
        )

    async def invalidate_user_cache(self, user_id: int | str) -> bool:
        """Deletes the user's record, permissions, session and user-with-roles
        keys in one atomic step (``CACHE.INVALIDATEUSER``)."""
        uid = ident(user_id, "user_id")
        k = self.cache.keys
        keys = (k.user(uid), k.permissions(uid), k.session(uid), k.user_with_roles(uid))
        for key in keys:
            self.cache.forget(key)
        try:
            await self.cache.redis_client.execute_command("CACHE.INVALIDATEUSER", uid)
            return True
        except Exception as e:
            logger.warning("cachekit: CACHE.INVALIDATEUSER failed (%s)", e)
            return False
        finally:
            for key in keys:
                self.cache.forget(key)

    # -- single-flight loaders ----------------------------------------------
    async def get_or_set_user(
        self, user_id: int | str, loader: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """The cached user, or `loader()`'s result, stored; concurrent misses
        of one user call the loader once."""
        return await self._load_once(
            self.cache.keys.user(ident(user_id, "user_id")),
            lambda: self.get_user(user_id),
            loader,
            lambda v: self.set_user(user_id, v),
        )

    async def get_or_set_user_permissions(
        self, user_id: int | str, loader: Callable[[], Awaitable[list[str]]]
    ) -> list[str] | None:
        return await self._load_once(
            self.cache.keys.permissions(ident(user_id, "user_id")),
            lambda: self.get_user_permissions(user_id),
            loader,
            lambda v: self.set_user_permissions(user_id, v),
        )

    async def get_or_set_user_session(
        self, telegram_id: int | str, loader: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        return await self._load_once(
            self.cache.keys.session(ident(telegram_id, "telegram_id")),
            lambda: self.get_user_session(telegram_id),
            loader,
            lambda v: self.set_user_session(telegram_id, v),
        )


class QueryCacheService(_Service):
    def __init__(self, cache_manager: CacheManager) -> None:
        super().__init__(cache_manager)
        self.query_ttl: int | None = None
        self.search_ttl: int | None = None

    @staticmethod
    def _filters_args(filters: Mapping[str, Any] | None) -> list[str]:
        if not filters:
            return []
        if not isinstance(filters, Mapping):
            raise TypeError(f"filters must be a dict, got {type(filters).__name__}")
        return ["FILTERS", json.dumps(filters, sort_keys=True)]

    async def get_search_results(
        self, query: str, user_id: int | str, filters: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        q, uid = text_arg(query, "query"), ident(user_id, "user_id")
        command = ("CACHE.GETSEARCH", q, uid, *self._filters_args(filters))
        value: dict[str, Any] | None = await self.cache.read(
            self.cache.keys.search(q, uid, filters), command
        )
        return value

    async def set_search_results(
        self,
        query: str,
        user_id: int | str,
        results: dict[str, Any],
        filters: dict[str, Any] | None = None,
    ) -> bool:
        q, uid = text_arg(query, "query"), ident(user_id, "user_id")
        key = self.cache.keys.search(q, uid, filters)
        filters_args = self._filters_args(filters)
        check_ttl(self.search_ttl)
        args: list[Any] = ["CACHE.SETSEARCH", q, uid, json.dumps(results, ensure_ascii=False)]
        args += filters_args
        if self.search_ttl:
            args += ["TTL", self.search_ttl]
        try:
            await self.cache.write(key, args)
            return True
        except Exception as e:
            logger.warning("cachekit: CACHE.SETSEARCH failed (%s)", e)
            return False

    async def get_rag_response(
        self, query: str, user_id: int | str, context_hash: str
    ) -> dict[str, Any] | None:
        q, uid = text_arg(query, "query"), ident(user_id, "user_id")
        ctx = text_arg(context_hash, "context_hash")
        value: dict[str, Any] | None = await self.cache.read(
            self.cache.keys.rag(q, uid, ctx), ("CACHE.GETRAG", q, uid, ctx)
        )
        return value

    async def set_rag_response(
        self, query: str, user_id: int | str, context_hash: str, response: dict[str, Any]
    ) -> bool:
        q, uid = text_arg(query, "query"), ident(user_id, "user_id")
        ctx = text_arg(context_hash, "context_hash")
        return await self._write(
            self.cache.keys.rag(q, uid, ctx),
            ("CACHE.SETRAG", q, uid, ctx),
            response,
            self.query_ttl,
        )

    def _generate_search_cache_key(
        self, query: str, user_id: int | str, filters: dict[str, Any] | None = None
    ) -> str:
        """The key of a search, in the server's key style as last seen."""
        return self.cache.keys.search(query, ident(user_id, "user_id"), filters)

    async def get_or_set_search_results(
        self,
        query: str,
        user_id: int | str,
        loader: Callable[[], Awaitable[dict[str, Any]]],
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        return await self._load_once(
            self._generate_search_cache_key(query, user_id, filters),
            lambda: self.get_search_results(query, user_id, filters),
            loader,
            lambda v: self.set_search_results(query, user_id, v, filters),
        )

    async def get_or_set_rag_response(
        self,
        query: str,
        user_id: int | str,
        context_hash: str,
        loader: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any] | None:
        return await self._load_once(
            self.cache.keys.rag(query, ident(user_id, "user_id"), context_hash),
            lambda: self.get_rag_response(query, user_id, context_hash),
            loader,
            lambda v: self.set_rag_response(query, user_id, context_hash, v),
        )


class TranslationCacheService(_Service):
    def __init__(self, cache_manager: CacheManager) -> None:
        super().__init__(cache_manager)
        self.translation_ttl: int | None = None

    async def get_translation(
        self, text: str, source_lang: str, target_lang: str
    ) -> dict[str, Any] | None:
        t = text_arg(text, "text")
        src, dst = text_arg(source_lang, "source_lang"), text_arg(target_lang, "target_lang")
        value: dict[str, Any] | None = await self.cache.read(
            self._generate_translation_key(t, src, dst), ("CACHE.GETTRANSLATION", t, src, dst)
        )
        return value

    async def set_translation(
        self,
        text: str,
        source_lang: str,
        target_lang: str,
        translation_result: dict[str, Any],
    ) -> bool:
        t = text_arg(text, "text")
        src, dst = text_arg(source_lang, "source_lang"), text_arg(target_lang, "target_lang")
        return await self._write(
            self._generate_translation_key(t, src, dst),
            ("CACHE.SETTRANSLATION", t, src, dst),
            translation_result,
            self.translation_ttl,
        )

    def _generate_translation_key(self, text: str, source_lang: str, target_lang: str) -> str:
        """The key of a translation, in the server's key style as last seen."""
        return self.cache.keys.translation(text, source_lang, target_lang)

    async def get_or_set_translation(
        self,
        text: str,
        source_lang: str,
        target_lang: str,
        loader: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any] | None:
        return await self._load_once(
            self._generate_translation_key(text, source_lang, target_lang),
            lambda: self.get_translation(text, source_lang, target_lang),
            loader,
            lambda v: self.set_translation(text, source_lang, target_lang, v),
        )


def document_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"limit must be a positive int, got {value!r}")
    return value


class DocumentCacheService(_Service):
    """The original ``DatabaseOptimizer``'s popular-document lists, at
    ``popular_documents:<limit>:<category or 'all'>`` (``cachekit.document-ttl``)."""

    def __init__(self, cache_manager: CacheManager) -> None:
        super().__init__(cache_manager)
        self.document_ttl: int | None = None

    @staticmethod
    def _category(category: str | None) -> str:
        if category is None:
            return "all"
        return text_arg(category, "category") or "all"

    async def get_popular_documents(
        self, limit: int = 10, category: str | None = None
    ) -> list[Any] | None:
        n, cat = document_limit(limit), self._category(category)
        value: list[Any] | None = await self.cache.read(
            self.cache.keys.documents(n, cat), ("CACHE.GETDOCUMENTS", n, cat)
        )
        return value

    async def set_popular_documents(
        self, documents: list[Any], limit: int = 10, category: str | None = None
    ) -> bool:
        n, cat = document_limit(limit), self._category(category)
        return await self._write(
            self.cache.keys.documents(n, cat),
            ("CACHE.SETDOCUMENTS", n, cat),
            documents,
            self.document_ttl,
        )

    async def get_or_set_popular_documents(
        self,
        loader: Callable[[], Awaitable[list[Any]]],
        limit: int = 10,
        category: str | None = None,
    ) -> list[Any] | None:
        return await self._load_once(
            self.cache.keys.documents(document_limit(limit), self._category(category)),
            lambda: self.get_popular_documents(limit, category),
            loader,
            lambda v: self.set_popular_documents(v, limit, category),
        )


def pack_fp32(vector: bytes | bytearray | memoryview | Sequence[float]) -> bytes:
    """Little-endian float32 bytes of a vector: bytes as they are (e.g.
    ``numpy_array.astype("<f4").tobytes()``), or a sequence of finite floats."""
    if isinstance(vector, (bytes, bytearray, memoryview)):
        data = bytes(vector)
        if len(data) % 4:
            raise ValueError(f"FP32 bytes must be a multiple of 4 long, got {len(data)}")
        return data
    values = [float(v) for v in vector]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("vector values must be finite (no NaN or infinity)")
    try:
        return struct.pack(f"<{len(values)}f", *values)
    except OverflowError as e:
        raise ValueError(f"vector value out of float32 range ({e})") from None


class EmbeddingCacheService(_Service):
    """Embeddings stored by the module as packed float32 (4 bytes a
    dimension) at ``embedding:<md5(text)>:<model>`` (``cachekit.embedding-ttl``).

    Reads return the float32 bytes (``numpy.frombuffer(b, "<f4")``). They go
    through the memory tier like every other kind: the module answers them in
    JSON (``FORMAT JSON``), whose numbers read back as exactly the stored
    float32 values, and the tier keeps that list, dropped when the key
    changes anywhere; the bytes are packed from it on return."""

    def __init__(self, cache_manager: CacheManager) -> None:
        super().__init__(cache_manager)
        self.embedding_ttl: int | None = None

    async def get_embedding(self, text: str, model: str) -> bytes | None:
        t, m = text_arg(text, "text"), text_arg(model, "model")
        value: list[float] | None = await self.cache.read(
            self.cache.keys.embedding(t, m), ("CACHE.GETEMBEDDING", t, m, "FORMAT", "JSON")
        )
        if value is None:
            return None
        return struct.pack(f"<{len(value)}f", *value)

    async def set_embedding(
        self, text: str, model: str, vector: bytes | bytearray | memoryview | Sequence[float]
    ) -> bool:
        t, m = text_arg(text, "text"), text_arg(model, "model")
        data = pack_fp32(vector)
        check_ttl(self.embedding_ttl)
        args: list[Any] = ["CACHE.SETEMBEDDING", t, m, data, "FORMAT", "FP32"]
        if self.embedding_ttl:
            args += ["TTL", self.embedding_ttl]
        try:
            await self.cache.write(self.cache.keys.embedding(t, m), args)
            return True
        except Exception as e:
            logger.warning("cachekit: CACHE.SETEMBEDDING failed (%s)", e)
            return False
