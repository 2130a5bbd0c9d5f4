"""The package's exceptions."""

from __future__ import annotations


class CacheKitError(Exception):
    """Base of the package's errors."""


class RateLimiterError(CacheKitError):
    """A rate-limit call failed; the cause is chained (``__cause__``)."""
