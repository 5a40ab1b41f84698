"""A daemon in its own process, for the memory checks: ``python -m tests.faults.child_daemon <dir> <ami port> <s>``.

Runs :func:`monitor.daemon.run_daemon` (test settings: SQLite in ``<dir>``) for ``<s>`` seconds, then prints one
JSON line: its peak resident memory (``VmHWM``, KiB, from /proc) before and after, and what the AMI source saw.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from monitor.daemon import Daemon, run_daemon
from tests.support.daemon import daemon_settings


def vm(key: str) -> int:
    """A memory figure of this process from /proc/self/status (KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


async def main(tmp: Path, port: int, seconds: float) -> None:
    stop = asyncio.Event()
    ready: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_daemon(daemon_settings(tmp, port), stop=stop, ready_cb=ready.set_result))
    d = await asyncio.wait_for(ready, 20)
    before = vm("VmHWM")
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.sleep(seconds)
    src = d.sources["default"]
    out = {"hwm_before_kib": before, "hwm_kib": vm("VmHWM"), "rss_kib": vm("VmRSS"),
           "bytes_received": src.bytes_received, "last_error": src.last_error, "connected": src.connected}
    stop.set()
    await asyncio.wait_for(task, 20)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
