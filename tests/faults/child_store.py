"""A qmon Store in a child process: submits call records (one every ``gap`` s) until it is killed.

``python -m tests.faults.child_store URL JOURNAL GAP_S`` prints ``ready``, then ``<i> <monotonic time taken just
before submit()>`` for every record ``k9-<i>``. CLOCK_MONOTONIC is system-wide, so the parent compares it with
its own clock at the moment it sends SIGKILL. Production timings (flush interval 1 s, batch 200).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace

from monitor.core.records import CallRecord, RingNoAnswer, Segment, Transfer
from monitor.settings import StoreSettings
from monitor.store import Store

TEMPLATE = CallRecord(
    linkedid="", call_id="", caller="+15550100", caller_name="Caller", start_ts=1795381000.0, end_ts=1795381090.0,
    segments=(Segment("support", True, 1795381001.0, 1795381030.0, 1, 1, "answered", 12.0, "agent1", "a.1", 4, 60.0,
                      "caller", (RingNoAnswer("agent2", 15000, 1795381005.0),)),),
    transfers=(Transfer("blind", "support", "agent1", "PJSIP/200", 1795381080.0),), outcome="answered")


async def main(url: str, journal: str, gap_s: float) -> None:
    store = Store(StoreSettings(url=url, journal_path=journal, connect_timeout_s=1.0, retry_max_s=0.5))
    await store.start()
    writer = asyncio.create_task(store.run(), name="store-writer")
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    i = 0
    while not writer.done():
        r = replace(TEMPLATE, linkedid=f"k9-{i}", call_id=f"k9-{i}.1", end_ts=TEMPLATE.end_ts + i)
        t = time.monotonic()
        store.submit(r)
        out.write(f"{i} {t:.6f}\n")
        out.flush()
        i += 1
        await asyncio.sleep(gap_s)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
