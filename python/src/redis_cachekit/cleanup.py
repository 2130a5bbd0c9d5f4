"""CacheCleanupService: the original's background loop.

The memory tier is trimmed here: expired entries and, should it ever be over
its size, the least recently used fifth. Redis needs no sweep for expired
keys (it expires them itself). For memory pressure the module runs its own
background ``MEMORY PURGE`` when the server has the
``cachekit.purge-threshold`` config; against a server without it this loop
does what the original did: ``MEMORY PURGE`` above 80% of ``maxmemory``.
"""

from __future__ import annotations

import asyncio
import logging

from .manager import CacheManager

logger = logging.getLogger("redis_cachekit")


class CacheCleanupService:
    def __init__(self, cache_manager: CacheManager) -> None:
        self.cache = cache_manager
        self.cleanup_interval: float = 3600
        self.retry_interval: float = 60
        self.purge_ratio = 0.8
        self.running = False
        self._server_purges: bool | None = None

    async def start_cleanup_task(self) -> None:
        """Runs until :meth:`stop_cleanup_task`; run it as a task."""
        self.running = True
        while self.running:
            try:
                await self.cleanup_expired_entries()
                await self.cleanup_memory_cache()
                await self.optimize_redis_memory()
                await self._sleep(self.cleanup_interval)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.warning("cachekit: cache cleanup error: %s", e)
                await self._sleep(self.retry_interval)

    async def _sleep(self, seconds: float) -> None:
        # In short steps, so that stop_cleanup_task() ends the loop promptly.
        end = asyncio.get_running_loop().time() + seconds
        while self.running:
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.5))

    async def cleanup_expired_entries(self) -> int:
        n = self.cache.memory_cache.remove_expired()
        logger.info("cachekit: cleaned up %d expired memory cache entries", n)
        return n

    async def cleanup_memory_cache(self) -> int:
        n = self.cache.memory_cache.trim(0.2)
        if n:
            logger.info("cachekit: cleaned up %d LRU memory cache entries", n)
        return n

    async def server_purges(self) -> bool:
        """Whether the server's module runs the memory purge itself."""
        if self._server_purges is None:
            try:
                reply = await self.cache.redis_client.config_get("cachekit.purge-threshold")
                self._server_purges = bool(reply)
            except Exception as e:
                logger.info("cachekit: cannot read cachekit.purge-threshold (%s)", e)
                return False
        return self._server_purges

    async def optimize_redis_memory(self) -> bool:
        """True when a MEMORY PURGE was run from here."""
        if await self.server_purges():
            logger.debug("cachekit: the module purges memory itself; nothing to do")
            return False
        info = await self.cache.redis_client.info("memory")
        used = int(info.get("used_memory", 0))
        limit = int(info.get("maxmemory", 0))
        if limit > 0 and used / limit > self.purge_ratio:
            await self.cache.redis_client.execute_command("MEMORY", "PURGE")
            logger.info("cachekit: performed Redis memory purge")
            return True
        return False

    def stop_cleanup_task(self) -> None:
        self.running = False
