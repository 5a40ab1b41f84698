"""Latency and capacity under load: the AMI read path with a slow database, scrapes, FastAGI, the store writer.

    python bench/load.py latency [--rate 5000] [--seconds 10] [--db-delay-s 0.2]
    python bench/load.py scrape [--queues 200] [--members 50] [--scrapes 12] [--scrape-interval-s 1]
                                [--seconds 15] [--rate 1000] [--scraper process|thread]
    python bench/load.py agi [--sessions 500] [--client lean|asyncio]
    python bench/load.py store [--rate 2000] [--seconds 10] [--engine sqlite|postgresql]

Each prints one JSON object (``bench/run.py`` turns them into table rows). ``latency`` and ``scrape`` run the
whole daemon (``run_daemon``, SQLite store) in this process against a paced AMI sender in another process: the
sender notes ``time.monotonic()`` when it writes each message to the socket, the daemon when the tracker has
processed it (``Ingest.feed`` returned), both on the same system-wide monotonic clock (never the PBX
``Timestamp``); the k-th message the wire parser keeps is the k-th event fed (answers to our own actions aside).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scrapeclient import scrape, scraper_main
from bench.stream import Stream, captures

SECRET = "bench"
ROOT = Path(__file__).resolve().parent.parent
TICK_S = 0.01  # the sender writes every 10 ms what is due


def pct(xs: list[float], q: float) -> float:
    """The q-quantile (0..1) of xs, nearest rank; 0.0 for an empty list."""
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def _kept(messages: list[bytes]) -> list[int]:
    """Indexes of the messages the live wire parser keeps and hands to ``Ingest.feed`` without an ActionID."""
    from monitor.ami.selection import DAEMON_EVENTS, tracker_selection
    from monitor.ami.wire import WireParser

    p = WireParser(expect_banner=False, select=tracker_selection(extra=DAEMON_EVENTS))
    return [i for i, m in enumerate(messages) if p.feed(m) and b"\r\nActionID:" not in m]


def member_events(queues: int, members: int) -> list[bytes]:
    """``QueueMemberAdded`` for every member of every queue (as Asterisk 22 spells it)."""
    out = []
    for q in range(queues):
        for m in range(members):
            iface = f"PJSIP/q{q}-a{m}"
            out.append((f"Event: QueueMemberAdded\r\nPrivilege: agent,all\r\nQueue: q{q}\r\nMemberName: a{m}\r\n"
                        f"Interface: {iface}\r\nStateInterface: {iface}\r\nMembership: dynamic\r\nPenalty: 0\r\n"
                        f"CallsTaken: 0\r\nLastCall: 0\r\nLastPause: 0\r\nLoginTime: 1\r\nInCall: 0\r\nStatus: 1\r\n"
                        f"Paused: {m % 3 == 0:d}\r\nPausedReason: \r\nRinginuse: 0\r\nWrapuptime: 0\r\n\r\n").encode())
    return out


# -- the paced AMI sender (its own process) ----------------------------------------------------------------


async def _sender(port_out: Callable[[int], None], preload: list[bytes], stream: list[bytes], rate: float,
                  out: Path) -> None:
    """Accept one AMI client: banner, Login, answer every action; after ``preload`` (at once) pace ``stream``."""
    done = asyncio.Event()
    sent: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        started = False
        while not reader.at_eof():
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            h = dict(line.split(": ", 1) for line in raw.decode().strip().split("\r\n") if ": " in line)
            aid, action = h.get("ActionID", ""), h.get("Action", "").lower()
            if action in ("queuestatus", "coreshowchannels"):
                done_event = "QueueStatusComplete" if action == "queuestatus" else "CoreShowChannelsComplete"
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: ok\r\n\r\n"
                             f"Event: {done_event}\r\nActionID: {aid}\r\nX-Bench: answer\r\nEventList: Complete\r\n"
                             "ListItems: 0\r\n\r\n".encode())
            else:
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: ok\r\n\r\n".encode())
            if action == "login" and not started:
                started = True
                tasks.add(asyncio.create_task(pace(writer)))

    async def pace(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)  # the resync answers first
        if preload:
            writer.write(b"".join(preload))
            await writer.drain()
            await asyncio.sleep(0.5 + len(preload) / 2500)  # ingested, then the first scrape creates their series
        per_tick = rate * TICK_S
        t0 = time.monotonic()
        i, k = 0, 0
        while i < len(stream):
            k += 1
            j = min(len(stream), int(k * per_tick))
            now = time.monotonic()
            writer.write(b"".join(stream[i:j]))
            sent.extend([now] * (j - i))
            i = j
            await asyncio.sleep(max(0.0, t0 + k * TICK_S - time.monotonic()))
        await writer.drain()
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_out(server.sockets[0].getsockname()[1])
    await done.wait()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(sent))
    tmp.rename(out)  # whole or absent
    await asyncio.sleep(3600)  # until killed: the client may still read


def _sender_main(args: argparse.Namespace) -> None:
    preload, stream = _workload(args)
    asyncio.run(_sender(lambda p: print(p, flush=True), preload, stream, args.rate, Path(args.out)))


def _workload(args: argparse.Namespace) -> tuple[list[bytes], list[bytes]]:
    s = Stream(captures())
    want = int(args.rate * args.seconds)
    reps = -(-want // s.events_per_rep)
    stream = s.messages(reps)[:want]
    preload = member_events(args.queues, args.members) if args.queues else []
    return preload, stream


# -- the daemon under load ---------------------------------------------------------------------------------


async def _loop_lag(lags: list[float], busy: list[float], stop: asyncio.Event, period_s: float = 0.005) -> None:
    """Event-loop lag (s): how late a 5 ms sleep wakes up; ``busy``: the loop thread's own CPU s in that time (the
    rest of a lag is waiting: for the GIL held by another thread, or for a CPU on a loaded machine)."""
    while not stop.is_set():
        t, c = time.monotonic(), time.thread_time()
        await asyncio.sleep(period_s)
        lags.append(time.monotonic() - t - period_s)
        busy.append(time.thread_time() - c)


async def run_daemon_under_load(args: argparse.Namespace) -> dict[str, Any]:
    """The daemon against the paced sender: per-message latency, loop lag, drops; scrapes if ``args.scrapes``."""
    from monitor.daemon import Daemon, run_daemon
    from tests.support.daemon import daemon_settings

    preload, stream = _workload(args)
    kept = _kept(stream)
    times_file = Path(tempfile.mkdtemp()) / "sent.json"
    sender = subprocess.Popen([  # noqa: ASYNC220 (before anything is measured)
        sys.executable, __file__, "send", "--rate", str(args.rate), "--seconds",
                               str(args.seconds), "--queues", str(args.queues), "--members", str(args.members),
                               "--out", str(times_file)], stdout=subprocess.PIPE, text=True)
    assert sender.stdout is not None
    port = int(sender.stdout.readline())
    done: list[float] = []
    lags: list[float] = []
    busy: list[float] = []
    stop_lag = asyncio.Event()
    scrape_times: list[float] = []
    moved: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            queues = tuple(f"q{q}" for q in range(args.queues)) or ("support", "sales")
            s = daemon_settings(Path(tmp), port, queues=queues)
            s = replace(s, ami=(replace(s.ami[0], secret=SECRET, ping_interval_s=3600, resync_timeout_s=30),))
            stop = asyncio.Event()
            ready: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(run_daemon(s, stop=stop, ready_cb=ready.set_result))
            d = await asyncio.wait_for(ready, 60)
            pbx = next(iter(d.pbxs.values()))
            ing = pbx.ingest
            feed = ing.feed
            skip_first = len(preload)

            answers = [0]

            def timed_feed(headers: Any, now: float) -> Any:
                out = feed(headers, now)
                if "ActionID" not in headers:
                    done.append(time.monotonic())
                elif "X-Bench" in headers:  # the sender's own answers to the resync (not stream events)
                    answers[0] += 1
                return out

            ing.feed = timed_feed  # type: ignore[method-assign]
            write = d.store.write_items

            async def slow_write(items: Any) -> None:
                await asyncio.sleep(args.db_delay_s)  # a slow database: every batch waits this long
                await write(items)

            d.store.write_items = slow_write  # type: ignore[method-assign]
            while len(done) < skip_first:  # noqa: ASYNC110 (polls a plain list) the preloaded members come first
                await asyncio.sleep(0.05)
            first_scrape = 0.0
            client: subprocess.Popen[str] | None = None
            prev: list[bytes] | None = None
            if args.scrapes and args.scraper == "process":  # its warm-up scrape, as below: not measured
                client = subprocess.Popen(  # noqa: ASYNC220 (before anything is measured)
                    [sys.executable, __file__, "scrapeclient", "--port", str(d.http_port), "--scrapes",
                     str(args.scrapes), "--scrape-interval-s", str(args.scrape_interval_s)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                assert client.stdout is not None
                line = await asyncio.to_thread(client.stdout.readline)
                first_scrape = json.loads(line)[0]
            elif args.scrapes:  # the first scrape after the members appeared creates their series: not measured
                warm: list[float] = []
                prev = await asyncio.to_thread(scrape, d.http_port, threading.Event(), warm, [], 1, 0.0)
                first_scrape = warm[0]
            lag_task = asyncio.create_task(_loop_lag(lags, busy, stop_lag))
            scrape_stop = threading.Event()
            scraper = None
            total = len(preload) + sum(m.startswith(b"Event:") for m in stream)
            deadline = time.monotonic() + args.seconds * 3 + 60
            while ((len(done) < skip_first + len(kept) or ing.events - answers[0] < total)
                   and time.monotonic() < deadline):
                if len(done) <= skip_first:  # the stream has not begun: scrapes would see nothing move
                    pass
                elif client is not None and client.stdin is not None and not client.stdin.closed:
                    client.stdin.write("go\n")
                    client.stdin.close()
                elif scraper is None and args.scrapes and client is None:
                    scraper = threading.Thread(target=scrape, args=(d.http_port, scrape_stop, scrape_times,
                                                                      moved, args.scrapes, args.scrape_interval_s,
                                                                      prev), daemon=True)
                    scraper.start()
                await asyncio.sleep(0.05)
            stop_lag.set()
            await lag_task
            scrape_stop.set()
            if scraper is not None:
                await asyncio.to_thread(scraper.join, 60)
            if client is not None:  # its scrapes were made while the stream ran (if it outlasted them: see moved)
                assert client.stdin is not None and client.stdout is not None
                if not client.stdin.closed:
                    client.stdin.write("go\n")
                    client.stdin.close()
                out = await asyncio.to_thread(client.stdout.read)
                await asyncio.to_thread(client.wait, 60)
                got = json.loads(out.strip().splitlines()[-1])
                scrape_times += got["times"]
                moved += got["moved"]
            events = ing.events - answers[0]
            members = len(ing.tracker.members.by_key)
            stop.set()
            code = await asyncio.wait_for(task, 120)
            stats = d.store.stats
            for _ in range(100):  # the sender writes its times once it wrote the last message
                if times_file.exists():
                    break
                await asyncio.sleep(0.1)
    finally:
        sender.kill()
        sender.wait()
    sent: list[float] = json.loads(times_file.read_text()) if times_file.exists() else []
    times_file.unlink(missing_ok=True)
    times_file.parent.rmdir()
    sent_kept = [sent[i] for i in kept]
    recv = done[skip_first:]
    lat = [r - t for r, t in zip(recv, sent_kept, strict=False)]
    return {
        "rate": args.rate, "messages": len(stream), "events_counted": events, "events_sent": total,
        "kept": len(kept), "processed": len(recv), "members": members,
        "latency_p50_ms": pct(lat, 0.5) * 1000, "latency_p99_ms": pct(lat, 0.99) * 1000,
        "latency_max_ms": max(lat, default=0.0) * 1000,
        "lag_p99_ms": pct(lags, 0.99) * 1000, "lag_max_ms": max(lags, default=0.0) * 1000,
        "busy_max_ms": max(busy, default=0.0) * 1000, "load_avg": os.getloadavg()[0],
        "lost": stats.get("lost", 0), "exit_code": code, "batches": stats.get("batches", 0),
        "calls_written": stats.get("calls_written", 0), "scrapes": len(scrape_times),
        "scrape_median_ms": statistics.median(scrape_times) * 1000 if scrape_times else 0.0,
        "scrape_max_ms": max(scrape_times, default=0.0) * 1000, "first_scrape_ms": first_scrape * 1000,
        "scraper": args.scraper, "scrape_interval_s": args.scrape_interval_s,
        # scrapes that saw most members' durations moved since the previous body (as at a 15 s Prometheus scrape)
        "scrapes_moved": sum(m > 0.5 for m in moved), "moved_min": min(moved, default=0.0),
    }


# -- FastAGI: bench/agiload.py (the server measured here, the callers in their own process) -----------------


async def run_agi(args: argparse.Namespace) -> dict[str, Any]:
    """See :func:`bench.agiload.run_agi`."""
    from bench import agiload

    return await agiload.run_agi(args)


async def run_store(args: argparse.Namespace) -> dict[str, Any]:
    """See :func:`bench.storeload.run_store`."""
    from bench import storeload

    return await storeload.run_store(args, tick_s=TICK_S)


def _number(kind: type, least: float) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` number >= ``least`` (one clear line otherwise, never a silent empty run)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):  # float("nan") and "inf" parse; nan < least is False
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least:g}, not {text}")
        return value
    return parse


def main() -> None:
    """Run one measurement, print its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("what", choices=("latency", "scrape", "agi", "store", "send", "scrapeclient"))
    ap.add_argument("--rate", type=_number(float, 0), default=0.0,
                    help="events (store: records) per second; 0: default")
    ap.add_argument("--seconds", type=_number(float, 0), default=0.0,
                    help="the stream's length (default: 10; scrape 15)")
    ap.add_argument("--db-delay-s", type=_number(float, 0), default=0.2)
    ap.add_argument("--queues", type=_number(int, 0), default=0, help="scrape: queues (0: 200)")
    ap.add_argument("--members", type=_number(int, 0), default=0, help="scrape: members per queue (0: 50)")
    ap.add_argument("--scrapes", type=_number(int, 0), default=0, help="scrape: scrapes measured (0: 12)")
    ap.add_argument("--scrape-interval-s", type=_number(float, 0), default=1.0,
                    help="scrape: pause after each scrape (s); long enough for the members' durations to move")
    ap.add_argument("--scraper", choices=("process", "thread"), default="process",
                    help="scrape: the scraper in a process of its own, as Prometheus (default), or a thread of "
                         "the daemon's process")
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--sessions", type=_number(int, 1), default=500, help="agi: concurrent surveys")
    ap.add_argument("--client", choices=("lean", "asyncio"), default="lean",
                    help="agi: the callers' process: bench/agiload.py (default) or tests/support/agiclient.py")
    ap.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=_number(int, 1), default=200,
                    help="store: records per transaction (default: qmon's)")
    args = ap.parse_args()
    if args.what == "send":
        _sender_main(args)
        return
    if args.what == "scrapeclient":
        scraper_main(args)
        return
    if args.what == "latency":
        args.rate = args.rate or 5000
    elif args.what == "scrape":
        args.rate = args.rate or 1000
        args.queues, args.members = args.queues or 200, args.members or 50
        args.scrapes = args.scrapes or 12
        args.seconds = args.seconds or 15.0
        args.db_delay_s = 0.0
    elif args.what == "store":
        args.rate = args.rate or 2000
    args.seconds = args.seconds or 10.0
    runner = {"latency": run_daemon_under_load, "scrape": run_daemon_under_load, "agi": run_agi,
              "store": run_store}[args.what]
    print(json.dumps(asyncio.run(runner(args))))


if __name__ == "__main__":
    main()
