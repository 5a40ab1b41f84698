"""A lean FastAGI load client: N callers in one thread over raw non-blocking sockets, playing Asterisk.

    python bench/agiload.py PORT N THINK_S     # the callers alone (a process, as Asterisk is): one JSON object
    python bench/load.py agi [--sessions 500] [--client lean|asyncio]   # server + callers: the bench rows

Asterisk runs one C thread per AGI channel, blocked in ``read()``: it sees a command the moment it arrives and
answers at once. ``tests/support/agiclient.py`` (the tests' client) runs 500 asyncio coroutines, whose own
scheduling (a task wake-up, ``readline``, ``drain`` per line, 500 of them sharing one loop) was part of every
round trip it measured. This client is one ``selectors`` loop over plain sockets: per command one ``recv`` and
one ``send``, the clock read per socket right after its ``recv`` and right after its ``send``.

The callers answer like Asterisk 22 (the same replies as the tests' client): STREAM FILE/SET VARIABLE/VERBOSE at
once; GET DATA with the caller's key. All N sessions are open at the same time: every caller holds its first key
press until every session has received its first GET DATA (the caller is listening to the question; the server
has all N surveys running), then presses it ``uniform(0, THINK_S)`` s after that moment, and every later key
``uniform(0, THINK_S)`` s after its GET DATA arrived; with ``THINK_S = 0`` (lock-step) all N press at once.
Every round trip is measured: reply sent -> next command received (``time.monotonic()``, the system-wide
clock, so the server's own timestamps can be set against these).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.agiclient import agi_headers, asterisk_reply

ROOT = Path(__file__).resolve().parent.parent

clock = time.monotonic


@dataclass
class Caller:
    """One channel's side of the conversation."""

    sock: socket.socket
    script: list[str]
    headers: bytes
    port: int = 0
    buf: bytes = b""
    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    #: per round trip: (index of the command that ended it, reply sent at, that command received at)
    trips: list[tuple[int, float, float]] = field(default_factory=list)
    sent_at: float | None = None
    connected: float = 0.0  # connect() returned (the SYN is on its way)
    first: float = 0.0  # the first command arrived
    asked: bool = False  # has had its first GET DATA
    closed: bool = False


def reply_to(c: Caller, cmd: str) -> bytes | None:
    """Asterisk 22's reply to ``cmd`` (None for GET DATA: the caller's key, sent later)."""
    if cmd.startswith("GET DATA"):
        return None
    return asterisk_reply(cmd, c.variables).encode() + b"\n"


def key_reply(c: Caller) -> bytes:
    """The caller's answer to a GET DATA (a timeout when the script is used up)."""
    return f"200 result={c.script.pop(0)}\n".encode() if c.script else b"200 result= (timeout)\n"


def run(port: int, n: int, think_s: float, *, host: str = "127.0.0.1", deadline_s: float = 60.0,
        seed: int = 15) -> dict[str, Any]:
    """N callers at once against ``host:port``; their round trips, peak open sessions and what was set."""
    rnd = random.Random(seed)
    sel = selectors.DefaultSelector()
    callers: list[Caller] = []
    timers: list[tuple[float, int, Caller, bytes]] = []  # (due, seq, caller, reply)
    t0 = clock()

    def send(c: Caller, data: bytes) -> None:
        c.sock.sendall(data)  # a few bytes into an idle loopback socket: never blocks in practice
        c.sent_at = clock()

    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        h = agi_headers(f"U{i}", f"L{i}", callerid=f"555{i:04d}")
        c = Caller(s, ["9", str(1 + i % 5)] if i % 4 == 0 else [str(1 + i % 5)],
                   "".join(f"{k}: {v}\n" for k, v in h.items()).encode() + b"\n")
        c.connected = clock()
        callers.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)
    open_now = peak = asked = finished = 0
    held: list[tuple[Caller, bytes]] = []
    released_at: float | None = None
    open_at_release = 0
    seq = 0
    while finished < n:
        now = clock()
        if now - t0 > deadline_s:
            raise SystemExit(f"agiload: {finished} of {n} sessions finished in {deadline_s:.0f} s")
        while timers and timers[0][0] <= now:
            _, _, c, data = heapq.heappop(timers)
            if not c.closed:
                send(c, data)
        timeout = max(0.0, timers[0][0] - clock()) if timers else 1.0
        for key, mask in sel.select(timeout):
            c = key.data
            if mask & selectors.EVENT_WRITE:  # connected (or refused)
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise SystemExit(f"agiload: connect failed: {err}")
                c.port = c.sock.getsockname()[1]
                c.sock.sendall(c.headers)
                sel.modify(c.sock, selectors.EVENT_READ, c)
                open_now += 1
                peak = max(peak, open_now)
                continue
            try:
                data = c.sock.recv(65536)
            except ConnectionError:
                data = b""
            got = clock()
            if not data:
                sel.unregister(c.sock)
                c.sock.close()
                c.closed = True
                open_now -= 1
                finished += 1
                if not c.asked:  # ended before any question: it holds nobody up
                    c.asked = True
                    asked += 1
                continue
            c.buf += data
            while b"\n" in c.buf:
                raw, c.buf = c.buf.split(b"\n", 1)
                cmd = raw.decode().strip()
                if not cmd:
                    continue
                if c.sent_at is not None:
                    c.trips.append((len(c.commands), c.sent_at, got))
                    c.sent_at = None
                elif not c.commands:
                    c.first = got
                c.commands.append(cmd)
                reply = reply_to(c, cmd)
                if reply is not None:
                    send(c, reply)
                    continue
                reply = key_reply(c)
                if not c.asked:
                    c.asked = True
                    asked += 1
                    held.append((c, reply))
                elif think_s:
                    seq += 1
                    heapq.heappush(timers, (got + rnd.uniform(0, think_s), seq, c, reply))
                else:
                    send(c, reply)
        if held and asked == n:
            # Every session is open and listening to its first question: the callers start pressing keys.
            released_at = clock()
            open_at_release = open_now
            if think_s:
                for c, reply in held:
                    seq += 1
                    heapq.heappush(timers, (released_at + rnd.uniform(0, think_s), seq, c, reply))
            else:
                for c, reply in held:
                    send(c, reply)
            held = []
    sel.close()
    return {
        "sessions": n, "think_s": think_s, "wall": clock() - t0, "peak_open": peak,
        "open_at_release": open_at_release,
        "released_after_s": (released_at - t0) if released_at is not None else None,
        "closed": sum(c.closed for c in callers),
        "csat": sorted(int(c.variables.get("QMON_CSAT", "0")) for c in callers),
        # per round trip: [client port, command index, reply sent, command received] (monotonic s)
        "trips": [[c.port, j, a, b] for c in callers for j, a, b in c.trips],
        "latencies": [b - a for c in callers for _, a, b in c.trips],
        # connect() -> first command: the accept queue, the request, qmon's lookups (no round trip: reported apart)
        "first_command": [c.first - c.connected for c in callers if c.first],
    }


# -- the server side (bench/load.py agi) ---------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    """The q-quantile (0..1) of xs, nearest rank; 0.0 for an empty list."""
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def _summary(xs: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(xs, 0.5) * 1000, "p99_ms": pct(xs, 0.99) * 1000, "max_ms": max(xs, default=0.0) * 1000}


class _Timing:
    """The server's own clock readings per connection (keyed by the caller's port): when the loop read bytes
    from the socket (``feed_data``) and when each command was handed to the kernel (``write``); and the peak
    number of surveys running, read at every command."""

    def __init__(self) -> None:
        self.fed: dict[int, list[float]] = {}
        self.wrote: dict[int, list[float]] = {}
        self.peak = 0

    def channel_class(self, server: Any) -> type:
        from monitor.survey.agi import AgiChannel

        timing = self

        class TimedChannel(AgiChannel):
            def __init__(self, reader: Any, writer: Any, *a: Any, **kw: Any) -> None:
                super().__init__(reader, writer, *a, **kw)
                port = writer.get_extra_info("peername")[1]
                fed, wrote = timing.fed.setdefault(port, []), timing.wrote.setdefault(port, [])
                feed, write = reader.feed_data, writer.write

                def timed_feed(data: Any) -> None:
                    fed.append(clock())
                    feed(data)

                def timed_write(data: Any) -> None:
                    write(data)
                    wrote.append(clock())
                    timing.peak = max(timing.peak, server.stats["sessions"])

                reader.feed_data, writer.write = timed_feed, timed_write

            async def close(self) -> None:
                await super().close()
                # The wrappers hold the reader's and writer's own methods: a reference cycle per session, left
                # for the collector's full passes (16 more objects a session than the server leaves: 3x).
                del self.reader.feed_data, self.writer.write

        return TimedChannel


def _split(trips: list[list[Any]], timing: _Timing) -> tuple[list[float], list[float]]:
    """Per round trip: (caller's reply sent -> server wrote the next command; the server read the reply ->
    wrote the next command), both on the system-wide monotonic clock."""
    turn, inside = [], []
    for port, j, sent, _ in trips:
        wrote = timing.wrote[port][j]
        turn.append(wrote - sent)
        inside.append(wrote - max(t for t in timing.fed[port] if t <= wrote))
    return turn, inside


async def run_agi(args: argparse.Namespace) -> dict[str, Any]:
    """``args.sessions`` concurrent surveys from another process (as Asterisk would be): command round trips
    seen by the callers, the server's share of them, the peak number of surveys running at once.

    The server is wired as the daemon wires it (``monitor.daemon._build_survey``): cooldown and opt-out in a
    :class:`~monitor.survey.state.SurveyState` file (a cooldown write per completed survey, in the worker pool),
    started, then the start-up heap frozen (``monitor.daemon.freeze_startup_heap``). A fresh server and state
    file per mode: the same callers must not be in each other's cooldown."""
    import gc
    import resource
    import tempfile
    from datetime import time as dtime

    import monitor.survey.server as server_mod
    from monitor.config import number_normalizer
    from monitor.core.survey import PolicyConfig, SurveyPolicy
    from monitor.daemon import freeze_startup_heap
    from monitor.settings import TrackerSettings
    from monitor.survey.state import SurveyState
    from tests.support.calls import answered

    calls = {f"L{i}": answered(f"L{i}", caller=f"555{i:04d}") for i in range(args.sessions)}
    results: list[Any] = []
    out: dict[str, Any] = {"sessions": args.sessions, "client": args.client, "load_avg": os.getloadavg()[0]}
    plain = server_mod.AgiChannel
    for think in (0.3, 0.0):
        results.clear()
        timing = _Timing()
        with tempfile.TemporaryDirectory() as tmp:
            state = SurveyState(Path(tmp) / "survey.db", number_normalizer(TrackerSettings()))
            server = server_mod.SurveyServer(SurveyPolicy(PolicyConfig()), lookup=lambda u, lid: calls.get(lid or ""),
                                             on_result=results.append, cooldown=state, optout=state, port=0,
                                             local=lambda ts: dtime(12), max_sessions=args.sessions)
            server_mod.AgiChannel = timing.channel_class(server)  # type: ignore[misc]
            proc = None
            try:
                await server.start()
                freeze_startup_heap()
                client = ["bench/agiload.py"] if args.client == "lean" else ["-m", "tests.support.agiclient"]
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, *client, str(server.port), str(args.sessions), str(think),
                    stdout=asyncio.subprocess.PIPE, cwd=str(ROOT))
                raw, _ = await asyncio.wait_for(proc.communicate(), 120)
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            finally:
                if proc is not None and proc.returncode is None:  # the callers' process timed out: not left behind
                    proc.kill()
                    await proc.wait()
                server_mod.AgiChannel = plain  # type: ignore[misc]
                await server.close()
                gc.unfreeze()
                state.close()
        rep = json.loads(raw)
        lat: list[float] = rep["latencies"]
        key = "think" if think else "lockstep"
        row: dict[str, Any] = {
            "round_trips": len(lat), **_summary(lat), "wall_s": rep["wall"],
            "completed": sum(r.status == "completed" for r in results), "closed": rep["closed"],
            "csat_ok": rep["csat"] == sorted(1 + i % 5 for i in range(args.sessions)),
            "peak_surveys": timing.peak, "overloaded": server.stats["rejected_overloaded"],
            "server_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        }
        if "trips" in rep:
            turn, inside = _split(rep["trips"], timing)
            row["server_turnaround"] = _summary(turn)  # reply sent by the caller -> next command written
            row["server_inside"] = _summary(inside)  # reply read by the server's loop -> next command written
            row["peak_open"], row["open_at_release"] = rep["peak_open"], rep["open_at_release"]
            row["first_command"] = _summary(rep["first_command"])  # connect() -> first command received
        out[key] = row
    return out


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))))
