"""The tracking connection that keeps the memory tier coherent.

One dedicated RESP2 connection per CacheManager: it learns its own
``CLIENT ID``, turns on ``CLIENT TRACKING on REDIRECT <its id> BCAST`` with
the cached kinds' prefixes, then subscribes to ``__redis__:invalidate``.
From then on every change to a key under those prefixes, by any client or by
the module, arrives here as a message naming the key (or nil for a flush).

The tier is live only while this connection is subscribed. When it fails
(server gone, ``CLIENT KILL``, a ping unanswered) the tier is emptied and
stays unused until tracking is back; the loop reconnects with a bounded
back-off for as long as the manager is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool

from .tier import MemoryTier

logger = logging.getLogger("redis_cachekit")

CHANNEL = b"__redis__:invalidate"
CLIENT_NAME = "cachekit-tracking"


class Tracker:
    def __init__(
        self,
        pool: ConnectionPool,
        tier: MemoryTier,
        prefixes: Sequence[str],
        *,
        ping_interval: float = 1.0,
        on_connect: Callable[[AbstractConnection], Any] | None = None,
    ) -> None:
        self._pool = pool
        self._tier = tier
        self._prefixes = list(prefixes)
        self._ping_interval = ping_interval
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self._conn: AbstractConnection | None = None
        self._ready = asyncio.Event()
        self._last_seen = 0.0
        self.client_id: int | None = None
        self.connects = 0
        self.losses = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="redis_cachekit-tracking"
            )

    async def wait_ready(self, timeout: float) -> bool:
        """Waits until the tier is live; False after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._ready.clear()
        self._tier.set_live(False)
        await self._drop()

    # -- the loop ----------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._session()
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure: the tier may have missed a change
                logger.warning("cachekit: tracking connection lost (%s); memory tier off", e)
            self._lose()
            await self._drop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _lose(self) -> None:
        if self._ready.is_set():
            self.losses += 1
        self._ready.clear()
        self._tier.set_live(False)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    def _new_connection(self) -> AbstractConnection:
        kwargs = dict(self._pool.connection_kwargs)
        # Its own socket: blocking reads without a timeout (pings watch it),
        # RESP2 so invalidations come as pub/sub messages, no retries that
        # would reconnect silently without tracking.
        kwargs["socket_timeout"] = None
        kwargs["protocol"] = 2
        kwargs["health_check_interval"] = 0
        kwargs.pop("retry", None)
        # redis-py 6+ adds RESP3-only maintenance notifications to pools.
        for name in list(kwargs):
            if name.startswith(("maint_notifications", "orig_")):
                del kwargs[name]
        kwargs["retry_on_timeout"] = False
        kwargs["decode_responses"] = False
        conn: AbstractConnection = self._pool.connection_class(**kwargs)
        return conn

    async def _call(self, conn: AbstractConnection, *args: Any) -> Any:
        await conn.send_command(*args, check_health=False)
        return await conn.read_response()

    async def _session(self) -> None:
        conn = self._new_connection()
        self._conn = conn
        # Setting up has no pinger yet: a server that accepts and stays silent
        # must not stall the loop.
        await asyncio.wait_for(self._subscribe(conn), max(5.0, 5 * self._ping_interval))
        self.connects += 1
        self._last_seen = time.monotonic()
        # Invalidations sent from here on reach us: the tier may be used.
        self._tier.set_live(True)
        self._ready.set()
        pinger = asyncio.get_running_loop().create_task(self._ping(conn))
        try:
            await self._read(conn)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    async def _subscribe(self, conn: AbstractConnection) -> None:
        await conn.connect()  # type: ignore[no-untyped-call]
        client_id = int(await self._call(conn, "CLIENT", "ID"))
        await self._call(conn, "CLIENT", "SETNAME", CLIENT_NAME)
        args: list[Any] = ["CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST"]
        for p in self._prefixes:
            args += ["PREFIX", p]
        await self._call(conn, *args)
        if self._on_connect is not None:
            res = self._on_connect(conn)
            if asyncio.iscoroutine(res):
                await res
        reply = await self._call(conn, "SUBSCRIBE", CHANNEL)
        if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
            raise ConnectionError(f"unexpected SUBSCRIBE reply {reply!r}")
        self.client_id = client_id

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            msg = await conn.read_response()
            self._last_seen = time.monotonic()
            if not isinstance(msg, list) or not msg:
                continue
            kind = msg[0]
            if kind == b"message" and len(msg) >= 3 and msg[1] == CHANNEL:
                keys = msg[2]
                if keys is None:
                    self._tier.clear()  # FLUSHALL / FLUSHDB
                else:
                    for k in keys:
                        key = k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k
                        self._tier.invalidate(str(key))
            elif kind in (b"unsubscribe", b"punsubscribe"):
                raise ConnectionError("tracking channel unsubscribed")

    async def _ping(self, conn: AbstractConnection) -> None:
        """A connection that stops answering is as good as lost."""
        while True:
            await asyncio.sleep(self._ping_interval)
            if time.monotonic() - self._last_seen > 3 * self._ping_interval:
                logger.warning("cachekit: tracking connection stopped answering")
                await conn.disconnect()
                return
            await conn.send_command("PING", check_health=False)
