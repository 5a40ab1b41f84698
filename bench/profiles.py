"""Where the time goes: pyinstrument profiles of qmon's hot paths on the bench stream (docs/performance.md,
"Where the remaining time goes", summarises them).

    python bench/profiles.py replay [--repeat 4] [--out FILE]     # `qmon replay` of the stream: the whole process
    python bench/profiles.py wire+track [--repeat 4] [--out FILE] # wire parser -> Ingest -> tracker, no I/O
    python bench/profiles.py daemon [--repeat 4] [--out FILE]     # the live path: run_daemon over TCP
    python bench/profiles.py scrape [--queues 200] [--members 50] [--scrapes 10] [--out FILE]  # /metrics scrapes

The text tree goes to stdout; ``--out x.html`` writes pyinstrument's HTML view instead. ``replay`` runs
``main(["replay", FILE])`` on the stream as an ``.ami`` file under the profiler, in a fresh child process
(imports included), its bytecode cached by a first run (as ``bench/throughput.py`` measures it);
``daemon`` is its stage of that name (the bench's AMI server in a child process, the store as deployed);
``wire+track`` feeds the bytes in 64 KiB pieces as the live path reads them (``bench/throughput.py``'s stage of
that name); ``scrape`` is ``bench/render.py``'s set-up (members loaded through the wire parser, 1 000 stream
messages and 1 s of the daemon clock between scrapes).
A sampling profiler (1 ms): the shares are what to read; the figures are ``bench/``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinstrument import Profiler

from bench.stream import Stream, captures
from bench.throughput import bytecode_cached_env

ROOT = Path(__file__).resolve().parent.parent
INTERVAL_S = 0.001


def _render(profiler: Profiler, out: str, what: str) -> str:
    """The profile (titled ``what``) as text (stdout), or written as HTML to ``out``; returns what to print."""
    if profiler.last_session is not None:
        profiler.last_session.target_description = what
    if out:
        Path(out).write_text(profiler.output_html())
        return f"profile written to {out}"
    return profiler.output_text(unicode=False, color=False, show_all=False)


_REPLAY_CHILD = """
import sys
from pyinstrument import Profiler
profiler = Profiler(interval=float(sys.argv[3]))
profiler.start()
from monitor.cli import main  # the imports are in the profile: a fresh process, nothing imported yet
try:
    main(["replay", sys.argv[1]])
finally:
    profiler.stop()
    profiler.last_session.target_description = sys.argv[4]
    out = sys.argv[2]
    with open(out, "w") as f:
        f.write(profiler.output_html() if out.endswith(".html") else
                profiler.output_text(unicode=False, color=False))
"""


def profile_replay(repeat: int, out: str) -> str:
    """``qmon replay`` of the stream in a fresh child process, from its imports to its report (the interpreter's
    own start, ~20 ms, is not in it; ``main`` is given its argv, so the command returns instead of leaving
    through ``os._exit`` as the ``qmon`` program does, and the profile is written)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.ami"
        Stream(captures()).write(path, repeat)
        env = bytecode_cached_env(ROOT, str(Path(tmp) / "pycache"))
        # A first run caches the bytecode, as for an installed qmon (bench/throughput.py measures it so too).
        subprocess.run([sys.executable, "-m", "monitor", "replay", str(path)], check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
        result = Path(tmp) / ("profile.html" if out else "profile.txt")
        what = f"qmon replay of the bench stream x {repeat}: {Stream(captures()).events_per_rep * repeat:,} events"
        subprocess.run([sys.executable, "-c", _REPLAY_CHILD, str(path), str(result), str(INTERVAL_S), what],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
        if out:
            Path(out).write_bytes(result.read_bytes())
            return f"profile written to {out}"
        return result.read_text()


def profile_wire_track(repeat: int, out: str) -> str:
    """The wire parser (tracker selection, Newexten pre-read as live) into Ingest and the tracker, in-process."""
    from monitor.ami.selection import tracker_selection
    from monitor.ami.wire import WireParser
    from monitor.core.ingest import Ingest
    from monitor.core.tracker import CallTracker

    stream = Stream(captures())
    data = b"".join(stream.reps(repeat))
    ingest = Ingest(CallTracker())
    parser = WireParser(select=tracker_selection(defer=True))
    profiler = Profiler(interval=INTERVAL_S)
    profiler.start()
    for i in range(0, len(data), 65536):
        for h in parser.feed(data[i:i + 65536]):
            ingest.feed(h, 0.0)
    profiler.stop()
    return _render(profiler, out, f"wire parser -> Ingest -> tracker, {stream.events_per_rep * repeat:,} events")


def profile_scrape(queues: int, members: int, scrapes: int, out: str) -> str:
    """Whole /metrics scrapes (snapshot, render, parts) of the daemon's metrics, as ``bench/render.py`` runs them."""
    from bench.render import setup

    metrics, ing, parser, clock, msgs = setup(queues, members)

    async def run() -> Profiler:
        await metrics.expose_parts()  # the first scrape makes the series and caches (not profiled)
        gc.freeze()
        profiler = Profiler(interval=INTERVAL_S, async_mode="disabled")
        pos = 0
        for _ in range(scrapes):
            clock.t += 1.0
            for msg in parser.feed(b"".join(msgs[pos:pos + 1000])):
                ing.feed(msg, clock.t)
            pos = (pos + 1000) % max(1, len(msgs) - 1000)
            ing.tick(clock.t)
            profiler.start()
            await metrics.expose_parts()
            profiler.stop()
        return profiler

    return _render(asyncio.run(run()), out, f"{scrapes} /metrics scrapes, {queues} queues x {members} members")


def profile_daemon(repeat: int, out: str) -> str:
    """The live path (``bench/throughput.py``'s ``daemon`` stage): ``run_daemon`` on the stream over TCP from the
    bench's AMI server process, profiled from the daemon ready until every event was ingested."""
    from bench.throughput import daemon_stage_settings
    from monitor.daemon import Daemon, run_daemon

    expected = Stream(captures()).events_per_rep * repeat
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "throughput.py"), "--repeat", str(repeat),
                               "--stage", "serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().strip())

        async def run(tmp: Path) -> Profiler:
            s = daemon_stage_settings(tmp, port)
            stop = asyncio.Event()
            ready: asyncio.Future[Daemon] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(run_daemon(s, stop=stop, ready_cb=ready.set_result))
            d = await asyncio.wait_for(ready, 60)
            profiler = Profiler(interval=INTERVAL_S, async_mode="disabled")
            profiler.start()
            pbx = next(iter(d.pbxs.values()))
            while pbx.ingest.events < expected:  # noqa: ASYNC110 (a count, no event to wait on)
                await asyncio.sleep(0.01)
            profiler.stop()
            stop.set()
            await asyncio.wait_for(task, 120)
            return profiler

        with tempfile.TemporaryDirectory() as tmp:
            return _render(asyncio.run(run(Path(tmp))), out,
                           f"the live path (run_daemon over TCP) from ready to the last of {expected:,} events")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    """Profile one path; print the tree (or write HTML)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("what", choices=("replay", "wire+track", "daemon", "scrape"))
    ap.add_argument("--repeat", type=int, default=4,
                    help="replay, wire+track: repetitions of the bench stream (4: the throughput stream)")
    ap.add_argument("--queues", type=int, default=200)
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--scrapes", type=int, default=10)
    ap.add_argument("--out", default="", help="write pyinstrument's HTML view to this file instead")
    args = ap.parse_args()
    if args.what == "replay":
        print(profile_replay(args.repeat, args.out))
    elif args.what == "wire+track":
        print(profile_wire_track(args.repeat, args.out))
    elif args.what == "daemon":
        print(profile_daemon(args.repeat, args.out))
    else:
        print(profile_scrape(args.queues, args.members, args.scrapes, args.out))


if __name__ == "__main__":
    main()
