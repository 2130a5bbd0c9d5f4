from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import FLAVORS, Server

from redis_cachekit import CacheManager


@pytest.fixture(scope="session", params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture(scope="session")
def shared_server(flavor: str) -> Iterator[Server]:
    s = Server(flavor)
    yield s
    s.stop()


@pytest.fixture
def server(shared_server: Server) -> Server:
    """The flavor's shared server, emptied, with default configs."""
    shared_server.cli("FLUSHALL")
    shared_server.cli("CACHE.STATS", "RESET")
    shared_server.cli("CONFIG", "SET", "cachekit.key-style", "plain")
    return shared_server


@pytest.fixture
def fresh_server(flavor: str) -> Iterator[Server]:
    """A server of its own, for tests that stop or restart it."""
    s = Server(flavor)
    yield s
    s.stop()


@pytest.fixture
async def manager(server: Server) -> AsyncIterator[CacheManager]:
    m = CacheManager(server.url, ping_interval=0.2)
    assert await m.start(), "tracking did not come up"
    yield m
    await m.close()
