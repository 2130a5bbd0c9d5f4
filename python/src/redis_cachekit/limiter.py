"""RateLimiter: the original's API on the module's exact sliding window.

``is_allowed`` is one atomic ``RATELIMIT.CHECK``: however many processes
call it at once, no more than `limit` requests are admitted in any window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .errors import RateLimiterError
from .manager import CacheManager
from .services import ident

logger = logging.getLogger("redis_cachekit")

T = TypeVar("T")

_OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError)


def reply_map(reply: Any) -> dict[str, Any]:
    """A map reply as a dict, from RESP3 (a dict) or RESP2 (a flat list)."""
    if isinstance(reply, dict):
        items = list(reply.items())
    else:
        items = list(zip(reply[0::2], reply[1::2], strict=True))
    return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in items}


def positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


def action_arg(action: object) -> str:
    if not isinstance(action, str) or not action:
        raise ValueError(f"action must be a non-empty str, got {action!r}")
    return action


class RateLimiter:
    """``RateLimiter(cache_manager, fail_open=False)``.

    A call the server cannot answer (connection refused or lost, timeout)
    raises :class:`RateLimiterError`, unless the limiter was made with
    ``fail_open=True``: then it is logged and the request is allowed. An
    error the server answers (a wrong type at the key, a bad argument) always
    raises: it is not an outage.
    """

    def __init__(self, cache_manager: CacheManager, fail_open: bool = False) -> None:
        self.cache = cache_manager
        self.fail_open = fail_open

    async def _request(self, parse: Callable[[Any], T], *args: Any) -> T | None:
        """The parsed reply; None when the server cannot answer and the
        limiter fails open."""
        try:
            return parse(await self.cache.redis_client.execute_command(*args))
        except _OUTAGE as e:
            if self.fail_open:
                logger.warning("cachekit: %s failed (%s); allowed (fail_open)", args[0], e)
                return None
            raise RateLimiterError(f"{args[0]} failed: {e}") from e
        except Exception as e:
            raise RateLimiterError(f"{args[0]} failed: {e}") from e

    async def _call(self, *args: Any) -> dict[str, Any] | None:
        return await self._request(reply_map, *args)

    @staticmethod
    def _check_result(m: dict[str, Any]) -> dict[str, Any]:
        return {
            "allowed": bool(m["allowed"]),
            "current_count": int(m["current_count"]),
            "limit": int(m["limit"]),
            "remaining": int(m["remaining"]),
            "reset_time": int(m["reset_time"]),
            "retry_after": int(m["retry_after"]),
            "retry_after_ms": int(m["retry_after_ms"]),
            "reset_after_ms": int(m["reset_after_ms"]),
        }

    @staticmethod
    def _open_result(limit: int | None) -> dict[str, Any]:
        return {
            "allowed": True,
            "current_count": 0,
            "limit": limit,
            "remaining": limit,
            "reset_time": 0,
            "retry_after": 0,
            "retry_after_ms": 0,
            "reset_after_ms": 0,
            "fail_open": True,
        }

    async def is_allowed(
        self,
        identifier: str,
        limit: int,
        window_seconds: int,
        action: str = "default",
    ) -> dict[str, Any]:
        """Checks and, when allowed, records one request. The original's keys
        (`allowed`, `current_count`, `limit`, `remaining`, `reset_time`,
        `retry_after`) plus `retry_after_ms` and `reset_after_ms`."""
        ident_ = ident(identifier, "identifier")
        limit = positive(limit, "limit")
        window_seconds = positive(window_seconds, "window_seconds")
        m = await self._call(
            "RATELIMIT.CHECK", ident_, limit, window_seconds, "ACTION", action_arg(action)
        )
        return self._open_result(limit) if m is None else self._check_result(m)

    async def check_policy(
        self, identifier: str, action: str = "default", cost: int = 1
    ) -> dict[str, Any]:
        """As :meth:`is_allowed`, under the server's configured policy for
        `action` (``cachekit.ratelimit-policies``), counting `cost` requests."""
        ident_ = ident(identifier, "identifier")
        cost = positive(cost, "cost")
        m = await self._call("RATELIMIT.CHECK", ident_, "ACTION", action_arg(action), "COST", cost)
        return self._open_result(None) if m is None else self._check_result(m)

    async def get_rate_limit_info(self, identifier: str, action: str = "default") -> dict[str, Any]:
        """The original's `current_requests` and `requests_timestamps` (Unix
        seconds, oldest first), plus the module's `timestamps_ms`, `limit`,
        `window_ms` and `ttl_ms`."""
        ident_ = ident(identifier, "identifier")
        m = await self._call("RATELIMIT.INFO", ident_, "ACTION", action_arg(action))
        if m is None:
            return {"current_requests": 0, "requests_timestamps": [], "fail_open": True}
        stamps = [int(t) for t in m.get("timestamps") or []]
        return {
            "current_requests": int(m["current_requests"]),
            "requests_timestamps": [t // 1000 for t in stamps],
            "timestamps_ms": stamps,
            "limit": int(m["limit"]),
            "window_ms": int(m["window_ms"]),
            "ttl_ms": int(m["ttl_ms"]),
        }

    async def reset(self, identifier: str, action: str = "default") -> bool:
        """Deletes the limiter; True if it existed."""
        ident_ = ident(identifier, "identifier")
        try:
            n = await self.cache.redis_client.execute_command(
                "RATELIMIT.RESET", ident_, "ACTION", action_arg(action)
            )
        except Exception as e:
            raise RateLimiterError(f"RATELIMIT.RESET failed: {e}") from e
        return bool(n)

    async def _call_int(self, *args: Any) -> int | None:
        return await self._request(int, *args)

    async def acquire(
        self,
        identifier: str,
        limit: int | None = None,
        window_seconds: int | None = None,
        action: str = "default",
        cost: int = 1,
    ) -> int:
        """One ``RATELIMIT.ACQUIRE``: 0 when admitted (and recorded), else the
        milliseconds to wait before the same call is admitted; -1 when `cost`
        exceeds the limit. Without `limit`/`window_seconds` the server's
        policy for `action` applies."""
        ident_ = ident(identifier, "identifier")
        args: list[Any] = ["RATELIMIT.ACQUIRE", ident_]
        if (limit is None) != (window_seconds is None):
            raise ValueError("limit and window_seconds go together")
        if limit is not None and window_seconds is not None:
            args += [positive(limit, "limit"), positive(window_seconds, "window_seconds")]
        args += ["ACTION", action_arg(action), "COST", positive(cost, "cost")]
        n = await self._call_int(*args)
        return 0 if n is None else n

    async def is_allowed_rules(
        self,
        identifier: str,
        rules: list[tuple[int, int]],
        action: str = "default",
        cost: int = 1,
    ) -> dict[str, Any]:
        """As :meth:`is_allowed` under several ``(limit, window_seconds)``
        rules at once (1 to 8), all of which must allow; the reply describes
        the binding rule."""
        ident_ = ident(identifier, "identifier")
        if not 1 <= len(rules) <= 8:
            raise ValueError(
                f"rules must hold 1 to 8 (limit, window_seconds) pairs, got {len(rules)}"
            )
        args: list[Any] = ["RATELIMIT.CHECK", ident_]
        for limit, window in rules:
            args += [positive(limit, "limit"), positive(window, "window_seconds")]
        args += ["ACTION", action_arg(action), "COST", positive(cost, "cost")]
        m = await self._call(*args)
        return self._open_result(None) if m is None else self._check_result(m)

    async def is_allowed_all(
        self, limiters: list[tuple[str, str]], cost: int = 1
    ) -> dict[str, Any]:
        """One ``RATELIMIT.CHECKALL`` over ``(action, identifier)`` pairs (1 to
        16), each under its action's policy: all admitted, or none recorded.
        Returns `allowed`, `retry_after_ms`, `blocking` (index of the limiter
        that needs the longest wait, -1 when allowed) and `remaining` (list,
        in the given order)."""
        if not 1 <= len(limiters) <= 16:
            raise ValueError(f"limiters must hold 1 to 16 pairs, got {len(limiters)}")
        args: list[Any] = ["RATELIMIT.CHECKALL", len(limiters)]
        for action, identifier in limiters:
            args += [action_arg(action), ident(identifier, "identifier")]
        args += ["COST", positive(cost, "cost")]
        m = await self._call(*args)
        if m is None:
            return {
                "allowed": True,
                "retry_after_ms": 0,
                "blocking": -1,
                "remaining": [],
                "fail_open": True,
            }
        return {
            "allowed": bool(m["allowed"]),
            "retry_after_ms": int(m["retry_after_ms"]),
            "blocking": int(m["blocking"]),
            "remaining": [int(r) for r in m["remaining"]],
        }

    async def refund(self, identifier: str, action: str = "default", cost: int = 1) -> int:
        """Takes back the `cost` most recent requests still counted (e.g. the
        work they stood for failed); returns how many were taken back."""
        ident_ = ident(identifier, "identifier")
        n = await self._call_int(
            "RATELIMIT.REFUND", ident_, "ACTION", action_arg(action), "COST", positive(cost, "cost")
        )
        return 0 if n is None else n
