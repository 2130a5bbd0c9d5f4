"""CacheManager: the original design's two-level cache (process memory, then
Redis), with a memory tier that another process's write cannot leave stale.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import pickle
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from .keys import CACHED_PREFIXES, KeyScheme, KeyStyle, style_of
from .settings import CacheLevel
from .tier import MemoryTier, Ticket
from .tracking import Tracker

logger = logging.getLogger("redis_cachekit")

T = TypeVar("T")


def check_ttl(ttl: int | None, what: str = "ttl") -> None:
    if ttl is None:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise TypeError(f"{what} must be an int number of seconds, got {ttl!r}")
    if ttl < 0:
        raise ValueError(f"{what} must not be negative, got {ttl}")


class CacheManager:
    """``CacheManager(redis_url, memory_cache_size=1000, default_ttl=3600)``.

    Keyword-only extras: ``client`` (an existing ``redis.asyncio.Redis`` or
    ``RedisCluster``), ``cluster=True`` (build a ``RedisCluster`` from the
    URL), ``memory_ttl`` (the longest a memory entry lives; default
    ``default_ttl``), ``tracked_prefixes`` (the key prefixes the memory tier
    may hold Redis values for; default: every cached kind), ``ping_interval``
    (how often the tracking connection is checked, seconds).

    In cluster mode the memory tier holds no Redis values (only
    ``CacheLevel.MEMORY`` entries): every read goes to the owning node, so a
    read is never stale.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        memory_cache_size: int = 1000,
        default_ttl: int = 3600,
        *,
        client: redis.Redis | RedisCluster | None = None,
        cluster: bool = False,
        memory_ttl: float | None = None,
        tracked_prefixes: Sequence[str] = CACHED_PREFIXES,
        ping_interval: float = 1.0,
    ) -> None:
        if isinstance(memory_cache_size, bool) or not isinstance(memory_cache_size, int):
            raise TypeError("memory_cache_size must be an int")
        if memory_cache_size < 0:
            raise ValueError("memory_cache_size must be >= 0")
        check_ttl(default_ttl, "default_ttl")
        if default_ttl == 0:
            raise ValueError("default_ttl must be positive")
        if client is None and redis_url is None:
            raise ValueError("give redis_url or client")

        self.redis_pool: redis.ConnectionPool | None = None
        self.redis_client: Any
        # A client passed in is the caller's to close; one made here is ours.
        self._owns_client = client is None
        if client is not None:
            self.redis_client = client
            if isinstance(client, redis.Redis):
                self.redis_pool = client.connection_pool
        elif cluster:
            assert redis_url is not None
            self.redis_client = RedisCluster.from_url(redis_url)
        else:
            assert redis_url is not None
            self.redis_pool = redis.ConnectionPool.from_url(redis_url)
            self.redis_client = redis.Redis(connection_pool=self.redis_pool)
        self.cluster = isinstance(self.redis_client, RedisCluster)

        self.memory_cache_size = memory_cache_size
        self.default_ttl = default_ttl
        self.memory_ttl = float(default_ttl if memory_ttl is None else memory_ttl)
        self.memory_cache = MemoryTier(memory_cache_size)
        self.cache_stats: dict[str, int] = {
            "hits": 0,
            "misses": 0,
            "memory_hits": 0,
            "redis_hits": 0,
        }
        self.keys = KeyScheme("plain")
        self._tracked = tuple(tracked_prefixes)
        self._tracker: Tracker | None = None
        if not self.cluster and self.redis_pool is not None and memory_cache_size > 0:
            self._tracker = Tracker(
                self.redis_pool,
                self.memory_cache,
                self._tracked,
                ping_interval=ping_interval,
                on_connect=self._learn_style,
            )
        # Reads in flight, shared by callers that come while no invalidation
        # of the key has been seen since the read was sent.
        self._reads: dict[str, tuple[asyncio.Task[tuple[bool, Any]], Ticket]] = {}
        self._flights: dict[str, asyncio.Task[Any]] = {}
        self._style_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------
    @property
    def key_style(self) -> KeyStyle:
        return self.keys.style

    @property
    def tier_live(self) -> bool:
        """Whether the memory tier may hold Redis values right now."""
        return self.memory_cache.live

    async def start(self, timeout: float = 5.0) -> bool:
        """Starts tracking and waits until the memory tier is live (it also
        starts by itself on first use). True when live within `timeout`."""
        if self._tracker is None:
            await self._learn_style(None)
            return False
        self._tracker.start()
        return await self._tracker.wait_ready(timeout)

    async def close(self) -> None:
        """Stops tracking (the tier is emptied and stays off), lets reads in
        flight finish, and closes the connections this manager opened."""
        self._closed = True
        if self._tracker is not None:
            await self._tracker.stop()
        self.memory_cache.set_live(False)
        reads = [task for task, _ in self._reads.values()]
        if reads:
            await asyncio.wait(reads, timeout=5)
        if self._owns_client:
            await self.redis_client.aclose()
            if self.redis_pool is not None:
                await self.redis_pool.disconnect()

    async def __aenter__(self) -> CacheManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_started(self) -> None:
        if self._closed:
            return
        if self._tracker is not None:
            if not self._tracker.running:
                self._tracker.start()
        elif self._style_task is None:
            self._style_task = asyncio.get_running_loop().create_task(self._learn_style(None))

    async def _learn_style(self, conn: AbstractConnection | None) -> None:
        """The server's `cachekit.key-style`, read through `CACHE.KEY` (which
        needs no admin rights, unlike CONFIG GET)."""
        try:
            if conn is not None:
                await conn.send_command("CACHE.KEY", "user", "0", check_health=False)
                key = await conn.read_response()
            else:
                key = await self.redis_client.execute_command("CACHE.KEY", "user", "0")
        except ResponseError as e:
            logger.warning("cachekit: CACHE.KEY failed (%s); assuming key-style plain", e)
            return
        except Exception as e:
            if conn is not None:
                raise
            logger.warning("cachekit: cannot read the key style (%s)", e)
            return
        self._use_style(style_of(key))

    def _use_style(self, style: KeyStyle) -> None:
        if style != self.keys.style:
            # Entries were filed under the other style's names.
            self.keys.style = style
            self.memory_cache.clear()

    # -- the tracked read --------------------------------------------------
    async def read(
        self,
        key: str,
        command: Sequence[Any],
        *,
        use_memory: bool = True,
        styled: bool = True,
    ) -> Any:
        """Reads `key` through the memory tier, else by `command` (a GET or a
        module GET of that key), counting a hit or a miss. `styled`: `key` was
        built in the server's key style (checked with the read). A failed read
        or a value that is not JSON is a logged miss."""
        self._ensure_started()
        tier = self.memory_cache
        if use_memory:
            entry = tier.get(key)
            if entry is not None:
                self.cache_stats["hits"] += 1
                self.cache_stats["memory_hits"] += 1
                return entry.value
        shared = self._reads.get(key)
        if shared is not None and not shared[0].done() and tier.valid(shared[1]):
            task = shared[0]
        else:
            # Begun before the task runs, so the ticket predates the request.
            ticket = tier.begin(key)
            task = asyncio.get_running_loop().create_task(
                self._fetch(key, tuple(command), ticket, use_memory, styled)
            )
            self._reads[key] = (task, ticket)
            task.add_done_callback(lambda t: self._read_done(key, t))
        found, value = await asyncio.shield(task)
        if found:
            self.cache_stats["hits"] += 1
            self.cache_stats["redis_hits"] += 1
        else:
            self.cache_stats["misses"] += 1
        return value

    def _read_done(self, key: str, task: asyncio.Task[Any]) -> None:
        shared = self._reads.get(key)
        if shared is not None and shared[0] is task:
            del self._reads[key]

    async def _fetch(
        self, key: str, command: tuple[Any, ...], ticket: Ticket, use_memory: bool, styled: bool
    ) -> tuple[bool, Any]:
        tier = self.memory_cache
        store = use_memory and ticket.live and key.startswith(self._tracked)
        try:
            if store:
                # One round trip: the value, how long its key lives, and (for a
                # module read) the key style the module used for it.
                pipe = self.redis_client.pipeline(transaction=False)
                pipe.execute_command(*command)
                pipe.pttl(key)
                if styled:
                    pipe.execute_command("CACHE.KEY", "user", "0")
                replies = await pipe.execute()
                raw, pttl = replies[0], replies[1]
                if styled and style_of(replies[2]) != self.keys.style:
                    self._use_style(style_of(replies[2]))
                    store = False
            else:
                raw, pttl = await self.redis_client.execute_command(*command), -2
            if raw is None:
                return False, None
            value = json.loads(raw)
            if store and pttl != -2:
                ttl = self.memory_ttl if pttl < 0 else min(self.memory_ttl, pttl / 1000.0)
                tier.put_read(ticket, value, ttl)
            return True, value
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            logger.warning("cachekit: value at %r is not JSON (%s): treated as a miss", key, e)
            return False, None
        except Exception as e:
            logger.warning("cachekit: read of %r failed (%s): treated as a miss", key, e)
            return False, None
        finally:
            tier.end(ticket)

    def forget(self, key: str) -> None:
        """Drops `key` from this process and spoils every read of it in flight.
        Writers call it before sending and again after the reply, so a read
        that reached the server before the write cannot be stored after it."""
        self.memory_cache.invalidate(key, local=True)
        self._reads.pop(key, None)

    async def write(self, key: str, command: Sequence[Any]) -> Any:
        """Runs a command that changes `key`, keeping read-your-writes."""
        self.forget(key)
        try:
            return await self.redis_client.execute_command(*command)
        finally:
            self.forget(key)

    async def load_once(
        self,
        flight: str,
        get: Callable[[], Awaitable[T | None]],
        loader: Callable[[], Awaitable[T]],
        store: Callable[[T], Awaitable[Any]],
        key: str | None = None,
    ) -> T | None:
        """Single flight: concurrent callers with one `flight` name share one
        get, one loader call and one store. When `key` changes anywhere while
        the loader runs, the loaded value is returned but not stored: it may be
        older than the change."""

        async def run() -> T | None:
            ticket = self.memory_cache.begin(key) if key is not None else None
            try:
                value = await get()
                if value is not None:
                    return value
                loaded = loader()
                result: T | None = await loaded if inspect.isawaitable(loaded) else loaded
                if result is not None:
                    if ticket is None or not ticket.live or self.memory_cache.valid(ticket):
                        await store(result)
                    else:
                        logger.info("cachekit: %r changed while loading; not stored", key)
                return result
            finally:
                if ticket is not None:
                    self.memory_cache.end(ticket)

        task = self._flights.get(flight)
        if task is None:
            task = asyncio.get_running_loop().create_task(run())
            self._flights[flight] = task

            def done(t: asyncio.Task[Any]) -> None:
                if self._flights.get(flight) is t:
                    del self._flights[flight]
                if not t.cancelled():
                    t.exception()  # retrieved here so an unawaited failure is not logged twice

            task.add_done_callback(done)
        result: T | None = await asyncio.shield(task)
        return result

    # -- the original API --------------------------------------------------
    async def get(
        self,
        key: str,
        cache_level: CacheLevel = CacheLevel.REDIS,
        deserializer: str = "json",
    ) -> Any | None:
        """The value at `key`: memory first, then Redis (GET). Memory holds a
        Redis value only for keys under the tracked prefixes."""
        self._ensure_started()
        if cache_level in (CacheLevel.MEMORY, CacheLevel.REDIS):
            entry = self.memory_cache.get(key)
            if entry is not None:
                self.cache_stats["hits"] += 1
                self.cache_stats["memory_hits"] += 1
                return entry.value
        if cache_level is CacheLevel.MEMORY:
            self.cache_stats["misses"] += 1
            return None
        if deserializer == "json":
            return await self.read(
                key, ("GET", key), use_memory=cache_level is CacheLevel.REDIS, styled=False
            )
        try:
            raw = await self.redis_client.get(key)
        except Exception as e:
            logger.warning("cachekit: get %r failed (%s): treated as a miss", key, e)
            raw = None
        if raw is None:
            self.cache_stats["misses"] += 1
            return None
        try:
            value = self._deserialize(raw, deserializer)
        except Exception as e:
            logger.warning("cachekit: value at %r does not deserialize (%s)", key, e)
            self.cache_stats["misses"] += 1
            return None
        self.cache_stats["hits"] += 1
        self.cache_stats["redis_hits"] += 1
        return value

    async def set(
        self,
        key: str,
        value: Any,
        ttl: int | None = None,
        cache_level: CacheLevel = CacheLevel.REDIS,
        serializer: str = "json",
    ) -> bool:
        """Stores `value` (SETEX). `ttl` None or 0 means `default_ttl`, as in
        the original; a negative ttl raises ValueError."""
        check_ttl(ttl)
        ttl = ttl or self.default_ttl
        self._ensure_started()
        try:
            if cache_level is CacheLevel.MEMORY:
                self.memory_cache.put_local(key, value, min(ttl, self.memory_ttl))
                return True
            await self.write(key, ("SETEX", key, ttl, self._serialize(value, serializer)))
            return True
        except Exception as e:
            logger.warning("cachekit: set %r failed (%s)", key, e)
            return False

    async def delete(self, key: str) -> bool:
        try:
            await self.write(key, ("DEL", key))
            return True
        except Exception as e:
            logger.warning("cachekit: delete %r failed (%s)", key, e)
            return False

    async def get_or_set(
        self, key: str, loader: Callable[[], Awaitable[T]], ttl: int | None = None
    ) -> T | None:
        """The cached value, or `loader()`'s, stored with `ttl`. Concurrent
        misses of one key call the loader once. A loader returning None stores
        nothing."""
        check_ttl(ttl)

        async def get() -> T | None:
            value: T | None = await self.get(key)
            return value

        async def store(value: T) -> None:
            await self.set(key, value, ttl)

        return await self.load_once("get:" + key, get, loader, store, key)

    async def get_stats(self) -> dict[str, Any]:
        total = self.cache_stats["hits"] + self.cache_stats["misses"]
        hit_rate = self.cache_stats["hits"] / total * 100 if total > 0 else 0
        try:
            info = await self.redis_client.info("memory")
            used = info.get("used_memory_human", "N/A")
        except Exception as e:
            logger.warning("cachekit: INFO memory failed (%s)", e)
            used = "N/A"
        tracker = self._tracker
        return {
            "hit_rate": round(hit_rate, 2),
            "total_requests": total,
            "memory_cache_size": len(self.memory_cache),
            "redis_memory_usage": used,
            "stats": self.cache_stats,
            "memory_tier": {
                "live": self.memory_cache.live,
                "max_size": self.memory_cache_size,
                "invalidations": self.memory_cache.invalidations,
                "flushes": self.memory_cache.flushes,
                "tracking_connects": tracker.connects if tracker else 0,
                "tracking_losses": tracker.losses if tracker else 0,
            },
        }

    # -- the original's helpers -----------------------------------------------
    async def _set_memory_cache(self, key: str, value: Any, ttl: int) -> None:
        """A process-local memory entry (as ``set(..., CacheLevel.MEMORY)``)."""
        self.memory_cache.put_local(key, value, min(ttl, self.memory_ttl))

    @staticmethod
    def _is_expired(entry: Any) -> bool:
        expires_at = entry["expires_at"]
        return bool(datetime.now(timezone.utc).replace(tzinfo=None) > expires_at)

    # -- serialization (the original's) -------------------------------------
    @staticmethod
    def _serialize(value: Any, serializer: str) -> bytes:
        if serializer == "json":
            return json.dumps(value, ensure_ascii=False).encode("utf-8")
        if serializer == "pickle":
            return pickle.dumps(value)
        return str(value).encode("utf-8")

    @staticmethod
    def _deserialize(value: bytes, deserializer: str) -> Any:
        if deserializer == "json":
            return json.loads(value.decode("utf-8"))
        if deserializer == "pickle":
            return pickle.loads(value)
        return value.decode("utf-8")
