"""Throughput of AMI ingestion: qmon's whole pipeline over real TCP, beside raw panoramisk and the tracker alone.

    python bench/throughput.py [--repeat N] [--scenarios a,b,...]

The stream is every transcript of ``tests/fixtures`` (or the ones named) concatenated and repeated N times,
with Uniqueids/Linkedids made unique per repetition so the tracker does real work each time. Each stage runs
in its own process (so peak RSS is that stage's own), against its own test AMI server process (which
streams the whole thing right after Login):

* ``qmon``        AmiSource (panoramisk Manager + wire parser) -> Ingest -> CallTracker, over TCP
* ``panoramisk``  stock panoramisk Manager/AMIProtocol, a no-op plain callback for every event, over TCP
* ``wire+track``  WireParser over the bytes in 64 KiB pieces -> Ingest -> CallTracker, no I/O
* ``tracker``     Ingest -> CallTracker over already parsed header dicts, no I/O

Figures: events/s, MB/s of AMI bytes, peak RSS (the stage process, the stream held in memory included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.factcheck import SCENARIOS

SECRET = "bench"
_IDS = re.compile(rb"^([A-Za-z]*(?:niqueid|inkedid)): ([0-9.]+)\r$", re.M)


def build_stream(scenarios: list[str], repeat: int) -> list[bytes]:
    """Raw wire messages: the transcripts after their Login, repeated, ids unique per repetition."""
    base = [m for s in scenarios for m in transcript_messages(s)]
    out: list[bytes] = []
    for r in range(repeat):
        repl = rb"\1: \2" + f"r{r}".encode() + rb"\r"
        out += [_IDS.sub(repl, m) for m in base]
    return out


def _events(stream: list[bytes]) -> int:
    return sum(1 for m in stream if m.startswith(b"Event:"))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def _wait_count(count: Any, expected: int, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while count() < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count()} of {expected} events arrived")
        await asyncio.sleep(0.002)


async def stage_qmon(port: int, expected: int) -> float:
    """Seconds for AmiSource to log in and ingest the stream (+ its own resync answers)."""
    from monitor.ami.live import AmiSource
    from monitor.settings import AmiSettings

    ingest = Ingest(CallTracker())
    # The resync answers queue behind the whole stream here (the server sends it all at once): wait for them.
    cfg = AmiSettings(port=port, username="qmon", secret=SECRET, ping_interval_s=3600, resync_timeout_s=600)
    src = AmiSource(cfg, ingest)
    t0 = time.perf_counter()
    task = asyncio.create_task(src.run())
    await _wait_count(lambda: ingest.events, expected + 2)  # + QueueStatusComplete, CoreShowChannelsComplete
    dt = time.perf_counter() - t0
    await src.close()
    await task
    return dt


async def stage_panoramisk(port: int, expected: int) -> float:
    """Seconds for a stock panoramisk Manager to log in and dispatch every event to a no-op callback."""
    from panoramisk import Manager

    seen = [0]

    def on_event(manager: Any, event: Any) -> None:
        seen[0] += 1

    m = Manager(host="127.0.0.1", port=port, username="qmon", secret=SECRET, ping_delay=3600,
                loop=asyncio.get_running_loop())
    m.register_event("*", on_event)
    t0 = time.perf_counter()
    await m.connect()
    await _wait_count(lambda: seen[0], expected)
    dt = time.perf_counter() - t0
    m.close()
    return dt


def stage_local(stream: list[bytes], parse: bool) -> float:
    """Seconds for the tracker alone (parse=False: parsed beforehand; True: WireParser included)."""
    ingest = Ingest(CallTracker())
    if not parse:
        p = WireParser(expect_banner=False)
        headers = [h for raw in stream for h in p.feed(raw)]
        t0 = time.perf_counter()
        for h in headers:
            ingest.feed(h, 0.0)
        return time.perf_counter() - t0
    data = b"".join(stream)
    t0 = time.perf_counter()
    p = WireParser(expect_banner=False)
    for i in range(0, len(data), 65536):
        for h in p.feed(data[i:i + 65536]):
            ingest.feed(h, 0.0)
    return time.perf_counter() - t0


async def serve(stream: list[bytes]) -> None:
    """The test AMI server for one stage; prints its port, runs until killed."""
    async with AmiTestServer(stream, secret=SECRET, mode="whole") as srv:
        print(srv.port, flush=True)
        await asyncio.Event().wait()


def _child(args: argparse.Namespace, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--repeat", str(args.repeat), "--scenarios", ",".join(args.scenarios), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def run_stage(args: argparse.Namespace, stage: str) -> dict[str, float]:
    """One stage in a fresh process (with its own server process for the TCP stages)."""
    server = None
    extra = ["--stage", stage]
    if stage in ("qmon", "panoramisk"):
        server = _child(args, "--stage", "serve")
        assert server.stdout is not None
        extra += ["--port", server.stdout.readline().strip()]
    try:
        proc = _child(args, *extra)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"stage {stage} failed ({proc.returncode})")
        result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return result
    finally:
        if server is not None:
            server.terminate()
            server.wait()


def main() -> None:
    """Parse options; as the parent, run every stage and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repeat", type=int, default=10, help="times the transcript set is repeated")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated fixture names")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    stream = build_stream(args.scenarios, args.repeat)
    if args.stage == "serve":
        asyncio.run(serve(stream))
        return
    if args.stage:
        events = _events(stream)
        if args.stage == "qmon":
            dt = asyncio.run(stage_qmon(args.port, events))
        elif args.stage == "panoramisk":
            dt = asyncio.run(stage_panoramisk(args.port, events))
        else:
            dt = stage_local(stream, parse=args.stage == "wire+track")
        print(json.dumps({"seconds": dt, "rss_mb": _rss_mb()}))
        return
    size = sum(len(m) for m in stream)
    events = _events(stream)
    print(f"stream: {len(args.scenarios)} transcripts x {args.repeat} = {events} events, {size / 1e6:.1f} MB")
    print(f"{'stage':<12} {'events/s':>12} {'MB/s':>8} {'seconds':>8} {'peak RSS MB':>12}")
    for stage in ("qmon", "panoramisk", "wire+track", "tracker"):
        r = run_stage(args, stage)
        print(f"{stage:<12} {events / r['seconds']:>12,.0f} {size / 1e6 / r['seconds']:>8.1f} "
              f"{r['seconds']:>8.2f} {r['rss_mb']:>12.0f}")
    del stream


if __name__ == "__main__":
    main()
