"""Throughput of AMI ingestion: qmon's paths beside panoramisk's bare parse-and-dispatch of the same stream.

    python bench/throughput.py [--repeat N] [--captures N] [--rounds K] [--stages a,b,...]

The stream is :mod:`bench.stream` (every recorded transcript, ids renumbered per repetition) repeated N
times; rates always count every event of that full, unfiltered stream. Each stage runs in its own process
(peak RSS is the stage's own; the stream held in memory included), the TCP stages against their own test AMI
server process that streams everything right after Login. Rates are per CPU-second of the measured process
(and, for ``replay``, of the ``qmon`` child): on a shared machine wall time mostly measures the neighbours.
Best of K rounds, the rounds interleaving the stages.

* ``panoramisk-bare``  stock panoramisk ``AMIProtocol.data_received`` + ``Manager.dispatch`` to a no-op callback
  for every event, bytes fed in 64 KiB pieces, no I/O: the baseline of the targets
* ``panoramisk-tcp``   a stock panoramisk Manager over TCP, no-op callback per event
* ``replay``           ``python -m monitor replay FILE`` on the stream as an ``.ami`` file: the whole process,
  interpreter start and imports included (fast path); its second run, bytecode cached as for an installed qmon
* ``replay-full``      the same with ``--full-parse`` (every message parsed): the before/after of the fast path
* ``daemon``           the whole live path: ``run_daemon`` (AMI over TCP -> normalise -> tracker -> metrics, SQLite
  store writer attached, its batching as deployed: the default ``[store]`` settings), from start until every
  event was ingested
* ``amisource``        ``AmiSource`` -> ``Ingest`` -> ``CallTracker`` over TCP (no metrics, no store)
* ``wire+track``       ``WireParser`` (tracker selection, Newexten pre-read as live) over the bytes -> ``Ingest``
  -> ``CallTracker``, no I/O
* ``tracker``          ``Ingest`` -> ``CallTracker`` over already parsed header dicts, no I/O
* ``frame-*``, ``parse-*``  the wire parser alone, one optimisation at a time (each must pay): framing only by
  the terminator-search loop (before issue 15) or one ``bytes.split`` per chunk; ``parse-line`` = the parser
  with the line-by-line parse (before issue 15), ``parse-fast`` = with the dict parse, ``parse-select`` = plus
  the tracker's selection (untracked events counted, never parsed, in the decision loop), ``parse-ref`` = plus only
  the headers the normaliser reads parsed (generic subset parse), ``parse-subset`` = plus the bulk drop and the
  learnt layouts (the parser as qmon runs it; the others with ``WireParser(fast=False)``)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream import BANNER, Stream, captures

SECRET = "bench"
STAGES = ("panoramisk-bare", "panoramisk-tcp", "replay", "replay-full", "daemon", "amisource", "wire+track",
          "tracker", "frame-loop", "frame-split", "parse-line", "parse-fast", "parse-select", "parse-ref",
          "parse-subset")
PARSE_STAGES = ("frame-loop", "frame-split", "parse-line", "parse-fast", "parse-select", "parse-ref", "parse-subset")
TCP_STAGES = ("panoramisk-tcp", "daemon", "amisource")


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process and the children it waited for)


def _now() -> Timing:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + kids.ru_utime + kids.ru_stime


def _since(t0: Timing) -> Timing:
    t1 = _now()
    return t1[0] - t0[0], t1[1] - t0[1]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def _wait_count(count: Any, expected: int, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while count() < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count()} of {expected} events arrived")
        await asyncio.sleep(0.002)


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


async def stage_panoramisk_bare(data: bytes, expected: int) -> Timing:
    """Seconds for panoramisk to frame, parse and dispatch every event (no-op callback), no I/O."""
    from panoramisk import Manager
    from panoramisk.ami_protocol import AMIProtocol

    seen = [0]

    def on_event(manager: Any, event: Any) -> None:
        seen[0] += 1

    m = Manager(loop=asyncio.get_running_loop(), ping_delay=0)
    m.register_event("*", on_event)
    proto = AMIProtocol()
    proto.connection_made(_NullTransport())
    proto.factory = m
    t0 = _now()
    for i in range(0, len(data), 65536):
        proto.data_received(data[i:i + 65536])
    dt = _since(t0)
    if seen[0] < expected:
        raise RuntimeError(f"panoramisk dispatched {seen[0]} of {expected} events")
    return dt


async def stage_panoramisk_tcp(port: int, expected: int) -> Timing:
    """Seconds for a stock panoramisk Manager to log in and dispatch every event to a no-op callback."""
    from panoramisk import Manager

    seen = [0]

    def on_event(manager: Any, event: Any) -> None:
        seen[0] += 1

    m = Manager(host="127.0.0.1", port=port, username="qmon", secret=SECRET, ping_delay=3600,
                loop=asyncio.get_running_loop())
    m.register_event("*", on_event)
    t0 = _now()
    await m.connect()
    await _wait_count(lambda: seen[0], expected)
    dt = _since(t0)
    m.close()
    return dt


async def stage_amisource(port: int, expected: int) -> Timing:
    """Seconds for AmiSource to log in and ingest the stream (+ its own resync answers)."""
    from monitor.ami.live import AmiSource
    from monitor.core.ingest import Ingest
    from monitor.core.tracker import CallTracker
    from monitor.settings import AmiSettings

    ingest = Ingest(CallTracker())
    # The resync answers queue behind the whole stream here (the server sends it all at once): wait for them.
    cfg = AmiSettings(port=port, username="qmon", secret=SECRET, ping_interval_s=3600, resync_timeout_s=600)
    src = AmiSource(cfg, ingest)
    t0 = _now()
    task = asyncio.create_task(src.run())
    await _wait_count(lambda: ingest.events, expected)
    dt = _since(t0)
    await src.close()
    await task
    return dt


def daemon_stage_settings(tmp: Path, port: int) -> Any:
    """The ``daemon`` stage's Settings: the tests' daemon on the bench AMI server at ``port``, files in ``tmp``,
    the store as deployed (the test settings flush every 0.1 s, ten times the default's batches)."""
    from monitor.settings import StoreSettings
    from tests.support.daemon import daemon_settings

    s = daemon_settings(tmp, port)
    store = replace(StoreSettings(), url=s.store.url, journal_path=s.store.journal_path)
    return replace(s, ami=(replace(s.ami[0], secret=SECRET, ping_interval_s=3600, resync_timeout_s=600),),
                   store=store)


async def stage_daemon(port: int, expected: int) -> Timing:
    """Seconds from daemon start (store ready, metrics built) until every event of the stream was ingested."""
    from monitor.daemon import Daemon, run_daemon

    with tempfile.TemporaryDirectory() as tmp:
        s = daemon_stage_settings(Path(tmp), port)
        stop = asyncio.Event()
        ready: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run_daemon(s, stop=stop, ready_cb=ready.set_result))
        d = await asyncio.wait_for(ready, 60)
        t0 = _now()
        pbx = next(iter(d.pbxs.values()))
        await _wait_count(lambda: pbx.ingest.events, expected)
        dt = _since(t0)
        stop.set()
        await asyncio.wait_for(task, 120)
    return dt


def bytecode_cached_env(root: Path, pycache: str) -> dict[str, str]:
    """The environment of a ``qmon`` child run as an installed qmon runs: ``root`` importable, bytecode written to
    and read from ``pycache`` (``PYTHONDONTWRITEBYTECODE`` from the shell dropped)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(root), PYTHONPYCACHEPREFIX=pycache)
    return env


def stage_replay(path: Path, full: bool) -> Timing:
    """Seconds of ``qmon replay`` on the file, a whole process (``full``: with ``--full-parse``), measured on its
    second run: as an installed ``qmon`` runs, with its modules' bytecode cached (pip compiles it at install;
    a shell with ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile every qmon module inside the figure)."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as pycache:
        env = bytecode_cached_env(root, pycache)
        cmd = [sys.executable, "-m", "monitor", "replay", str(path), *(["--full-parse"] if full else [])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root, env=env)
        t0 = _now()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root, env=env)
        return _since(t0)


def stage_local(data: bytes, parse: bool) -> Timing:
    """Seconds for the tracker alone (parse=False: parsed beforehand; True: fast WireParser included)."""
    from monitor.ami.selection import tracker_selection
    from monitor.ami.wire import WireParser
    from monitor.core.ingest import Ingest
    from monitor.core.tracker import CallTracker

    ingest = Ingest(CallTracker())
    if not parse:
        headers = WireParser().feed(data)
        t0 = _now()
        for h in headers:
            ingest.feed(h, 0.0)
        return _since(t0)
    t0 = _now()
    p = WireParser(select=tracker_selection(defer=True))  # as the live path: Newexten pre-read, decided by Ingest
    for i in range(0, len(data), 65536):
        for h in p.feed(data[i:i + 65536]):
            ingest.feed(h, 0.0)
    ingest.events += p.dropped_events
    return _since(t0)


def stage_parse(data: bytes, variant: str) -> Timing:
    """Seconds for the wire parser alone over the bytes in 64 KiB pieces (see the module doc for variants)."""
    from monitor.ami.selection import tracker_selection
    from monitor.ami.wire import WireParser, _frame_mixed

    select = {"parse-select": tracker_selection(subset=False), "parse-ref": tracker_selection(),
              "parse-subset": tracker_selection()}.get(variant)
    p = WireParser(expect_banner=False, select=select, fast=variant == "parse-subset")  # the steps one at a time
    if variant == "parse-line":
        p._parse_fast = p._parse  # type: ignore[method-assign]
    t0 = _now()
    rest = b""
    for i in range(0, len(data), 65536):
        if variant == "frame-loop":
            _, rest = _frame_mixed(rest + data[i:i + 65536])
        elif variant == "frame-split":
            raws = (rest + data[i:i + 65536]).split(b"\r\n\r\n")
            rest = raws.pop()
        else:
            p.feed(data[i:i + 65536])
    return _since(t0)


async def serve(messages: list[bytes]) -> None:
    """The test AMI server for one stage; prints its port, runs until killed."""
    from tests.support.amiserver import AmiTestServer

    async with AmiTestServer(messages, secret=SECRET, mode="whole") as srv:
        print(srv.port, flush=True)
        await asyncio.Event().wait()


def _stream(args: argparse.Namespace) -> Stream:
    paths = captures()
    return Stream(paths[:args.captures] if args.captures else paths)


def _child(args: argparse.Namespace, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, __file__, "--repeat", str(args.repeat), "--captures", str(args.captures), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def run_stage(args: argparse.Namespace, stage: str) -> dict[str, float]:
    """One stage in a fresh process (with its own server process for the TCP stages)."""
    server = None
    extra = ["--stage", stage]
    if stage in TCP_STAGES:
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


def measure(args: argparse.Namespace, stages: list[str], rounds: int) -> tuple[int, int, dict[str, dict[str, float]]]:
    """(events, bytes, {stage: best-of-rounds result}); rounds interleave the stages so noise hits all alike."""
    s = _stream(args)
    events, size = s.events_per_rep * args.repeat, s.bytes_per_rep * args.repeat  # ids grow by a few bytes
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for stage in stages:
            r = run_stage(args, stage)
            if stage not in best or r["cpu"] < best[stage]["cpu"]:
                best[stage] = r
    return events, size, best


def _stage_main(args: argparse.Namespace) -> None:
    s = _stream(args)
    events = s.events_per_rep * args.repeat
    if args.stage == "serve":
        asyncio.run(serve(s.messages(args.repeat)))
        return
    if args.stage in ("replay", "replay-full"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stream.ami"
            s.write(path, args.repeat)
            del s
            dt = stage_replay(path, full=args.stage == "replay-full")
    elif args.stage == "panoramisk-bare":
        data = BANNER + b"".join(s.reps(args.repeat))
        dt = asyncio.run(stage_panoramisk_bare(data, events))
    elif args.stage in PARSE_STAGES:
        dt = stage_parse(b"".join(s.reps(args.repeat)), args.stage)
    elif args.stage in ("wire+track", "tracker"):
        dt = stage_local(b"".join(s.reps(args.repeat)), parse=args.stage == "wire+track")
    else:
        runner = {"panoramisk-tcp": stage_panoramisk_tcp, "amisource": stage_amisource, "daemon": stage_daemon}
        dt = asyncio.run(runner[args.stage](args.port, events))
    print(json.dumps({"seconds": dt[0], "cpu": dt[1], "rss_mb": _rss_mb()}))


def main() -> None:
    """Parse options; as the parent, run every stage and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repeat", type=int, default=4, help="repetitions of the transcript set (default 4: ~61 k events)")
    ap.add_argument("--captures", type=int, default=0, help="use only the first N captures (0 = all)")
    ap.add_argument("--rounds", type=int, default=1, help="best of this many runs per stage")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        _stage_main(args)
        return
    stages = [s for s in args.stages.split(",") if s]
    events, size, best = measure(args, stages, args.rounds)
    print(f"stream: {len(captures()) if not args.captures else args.captures} captures x {args.repeat} = "
          f"{events} events, {size / 1e6:.1f} MB")
    print(f"{'stage':<16} {'events/CPU-s':>12} {'MB/CPU-s':>8} {'CPU s':>6} {'wall s':>6} {'peak RSS MB':>11}")
    for stage in stages:
        r = best[stage]
        print(f"{stage:<16} {events / r['cpu']:>12,.0f} {size / 1e6 / r['cpu']:>8.1f} {r['cpu']:>6.2f} "
              f"{r['seconds']:>6.2f} {r['rss_mb']:>11.0f}")


if __name__ == "__main__":
    main()
