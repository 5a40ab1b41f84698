"""The one ``free_port`` and the one ``until``/``until_async`` of the suite, and where the fixtures are."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(cond: Callable[[], object], limit_s: float = 20.0, what: str = "condition",
                every_s: float = 0.05) -> None:
    """Poll ``cond`` every ``every_s`` s until it returns something true; AssertionError naming ``what`` after
    ``limit_s`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every_s)


async def until_async(cond: Callable[[], Awaitable[object]], limit_s: float = 20.0, what: str = "condition",
                      every_s: float = 0.02) -> float:
    """:func:`until` for an async ``cond``; returns the seconds it took (AssertionError after ``limit_s`` s)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not await cond():
        if loop.time() - t0 > limit_s:
            raise AssertionError(f"timed out waiting for {what} ({limit_s} s)")
        await asyncio.sleep(every_s)
    return loop.time() - t0
