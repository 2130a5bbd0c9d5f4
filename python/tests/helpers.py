from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Polls `cond` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.005)
    return cond()


async def settled(m: Any, write: Awaitable[Any]) -> Any:
    """Awaits a write through manager `m`, then its own invalidation: reads
    sent before that arrives are not stored, by design."""
    before = m.memory_cache.invalidations
    result = await write
    assert await eventually(lambda: m.memory_cache.invalidations > before)
    return result
