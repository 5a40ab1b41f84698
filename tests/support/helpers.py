"""The one ``free_port`` and the one ``until`` of the suite, and where the recorded fixtures are."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(cond: Callable[[], object], limit_s: float = 20.0, what: str = "condition") -> None:
    """Poll ``cond`` every 50 ms until it returns something true; AssertionError naming ``what`` after ``limit_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
