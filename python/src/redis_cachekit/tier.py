"""The in-process memory tier: bounded in count (LRU) and in age, and kept
coherent with Redis by invalidations.

Entries read from Redis are stored only while the tier is *live* (its
tracking connection is subscribed) and only when nothing invalidated their
key, or emptied the tier, between the moment the read was sent and the moment
it is stored: :meth:`MemoryTier.begin` takes a ticket before the read,
:meth:`MemoryTier.put_read` checks it. An invalidation that overtakes the
reply therefore cannot be undone by the reply.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any


def _utc_of(monotonic: float) -> datetime:
    """A time.monotonic() instant as a naive UTC datetime, as the original
    stored times (datetime.utcnow())."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now + timedelta(seconds=monotonic - time.monotonic())


@dataclass(slots=True)
class Entry:
    value: Any
    expires_at: float  # time.monotonic()
    accessed_at: float  # time.monotonic()

    def __getitem__(self, name: str) -> Any:
        """The original's entry dict: `value`, and `expires_at` and
        `accessed_at` as naive UTC datetimes."""
        if name == "value":
            return self.value
        if name == "expires_at":
            return _utc_of(self.expires_at)
        if name == "accessed_at":
            return _utc_of(self.accessed_at)
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Ticket:
    key: str
    seq: int
    live: bool


class MemoryTier:
    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError("memory_cache_size must be >= 0")
        self.max_size = max_size
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._live = False
        # Every invalidation or flush takes the next number; a ticket remembers
        # the number when its read was sent.
        self._seq = 0
        self._flushed_at = 0
        # Keys with a read in flight: how many reads, and the number of their
        # last invalidation.
        self._inflight: dict[str, int] = {}
        self._invalidated_at: dict[str, int] = {}
        self.invalidations = 0
        self.flushes = 0

    # -- state -------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self._live

    def set_live(self, live: bool) -> None:
        """Tracking is up (True) or lost (False). Losing it empties the tier:
        invalidations may have been missed."""
        if not live:
            self.clear()
        self._live = live

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    # The original's `memory_cache` was a dict that its cleanup and monitor
    # code read and trimmed directly; these keep such code working.
    def __getitem__(self, key: str) -> Entry:
        return self._entries[key]

    def __delitem__(self, key: str) -> None:
        if key not in self._entries:
            raise KeyError(key)
        self.invalidate(key, local=True)

    def keys(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, Entry]]:
        return list(self._entries.items())

    # -- reads -------------------------------------------------------------
    def get(self, key: str, now: float | None = None) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = time.monotonic() if now is None else now
        if now >= entry.expires_at:
            del self._entries[key]
            return None
        entry.accessed_at = now
        self._entries.move_to_end(key)
        return entry

    def begin(self, key: str) -> Ticket:
        """Before a read from Redis that may be stored."""
        self._inflight[key] = self._inflight.get(key, 0) + 1
        return Ticket(key, self._seq, self._live)

    def end(self, ticket: Ticket) -> None:
        left = self._inflight.get(ticket.key, 0) - 1
        if left <= 0:
            self._inflight.pop(ticket.key, None)
            self._invalidated_at.pop(ticket.key, None)
        else:
            self._inflight[ticket.key] = left

    def valid(self, ticket: Ticket) -> bool:
        """Nothing emptied the tier or invalidated the key since `ticket`."""
        return (
            ticket.live
            and self._live
            and self._flushed_at <= ticket.seq
            and self._invalidated_at.get(ticket.key, 0) <= ticket.seq
        )

    def put_read(self, ticket: Ticket, value: Any, ttl: float) -> bool:
        """Stores a value read from Redis, unless the ticket went stale."""
        if not self.valid(ticket):
            return False
        self._store(ticket.key, value, ttl)
        return True

    def put_local(self, key: str, value: Any, ttl: float) -> None:
        """A process-local entry (CacheLevel.MEMORY): no Redis key behind it."""
        self._store(key, value, ttl)

    def _store(self, key: str, value: Any, ttl: float) -> None:
        if self.max_size == 0 or ttl <= 0:
            return
        now = time.monotonic()
        self._entries[key] = Entry(value, now + ttl, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    # -- invalidation ------------------------------------------------------
    def invalidate(self, key: str, *, local: bool = False) -> None:
        """Drops `key` and spoils its reads in flight. `invalidations` counts
        the server's messages; `local` ones come from this process's writes."""
        self._seq += 1
        if not local:
            self.invalidations += 1
        self._entries.pop(key, None)
        if key in self._inflight:
            self._invalidated_at[key] = self._seq

    def clear(self) -> None:
        self._seq += 1
        self.flushes += 1
        self._flushed_at = self._seq
        self._entries.clear()

    # -- maintenance -------------------------------------------------------
    def remove_expired(self) -> int:
        now = time.monotonic()
        expired = [k for k, e in self._entries.items() if now >= e.expires_at]
        for k in expired:
            del self._entries[k]
        return len(expired)

    def trim(self, fraction: float = 0.2) -> int:
        """Drops the least recently used `fraction` of the entries when the tier
        is over its size (it never is: inserts evict; kept for the original
        cleanup loop)."""
        if len(self._entries) <= self.max_size:
            return 0
        n = int(len(self._entries) * fraction)
        for _ in range(n):
            self._entries.popitem(last=False)
        return n
