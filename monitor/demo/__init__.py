"""``qmon demo``: the daemon against a built-in simulated call center that speaks real AMI on a local port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from monitor.demo.scenario import DEFAULT_QUEUES, Simulation
from monitor.demo.server import AmiSimServer
from monitor.settings import AmiSettings, HttpSettings, Settings, StoreSettings, SurveySettings, TrackerSettings

#: The simulator only listens on 127.0.0.1, so a fixed demo credential exposes nothing.
DEMO_USER, DEMO_SECRET = "qmon", "qmon-demo"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qmon demo", description="Run qmon against a simulated call center "
                                "(queues, agents, callers) that speaks the Asterisk Manager Interface locally.")
    p.add_argument("--port-ami", type=int, default=0, help="simulator AMI port (default: any free port)")
    p.add_argument("--http-port", type=int, default=9465, help="qmon HTTP port for /metrics and /api/v1")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same calls)")
    p.add_argument("--http-bind", default="127.0.0.1", help="qmon HTTP address (0.0.0.0 inside a container)")
    p.add_argument("--db", default="qmon-demo.db",
                   help="SQLite file for call records (default ./qmon-demo.db), or a database URL")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many real seconds (0: run until ^C)")
    p.add_argument("--no-daemon", action="store_true", help="run the simulator alone (connect your own client)")
    return p


def demo_settings(ami_port: int, http_port: int, db: str, http_bind: str = "127.0.0.1") -> Settings:
    """Settings of the daemon pointed at the simulator, with SQLite storage and no survey server."""
    if "://" in db:
        url, journal = db, "qmon-demo.journal.jsonl"
    else:
        path = Path(db).resolve()
        url, journal = f"sqlite+aiosqlite:///{path}", str(path.with_suffix(".journal.jsonl"))
    return Settings(
        ami=(AmiSettings(name="demo", host="127.0.0.1", port=ami_port, username=DEMO_USER, secret=DEMO_SECRET),),
        tracker=TrackerSettings(queues=tuple(q.name for q in DEFAULT_QUEUES)),
        http=HttpSettings(bind=http_bind, port=http_port),
        store=StoreSettings(url=url, journal_path=journal),
        survey=SurveySettings(enabled=False),
    )


def cmd_demo(argv: list[str], env: Mapping[str, str]) -> int:
    """Entry point of ``qmon demo``."""
    args = _parser().parse_args(argv)
    if args.speed <= 0:
        print("qmon demo: --speed must be > 0", file=sys.stderr)
        return 2
    logging.basicConfig(level=env.get("QMON_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0


async def _main(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else int(time.time())
    sim = Simulation(seed, time.time())
    server = AmiSimServer(sim, speed=args.speed, username=DEMO_USER, secret=DEMO_SECRET)
    try:
        port = await server.start("127.0.0.1", args.port_ami)
    except OSError as exc:
        print(f"qmon demo: cannot listen on 127.0.0.1:{args.port_ami}: {exc.strerror}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    pacer = asyncio.create_task(server.run(), name="demo-simulator")
    print(f"qmon demo: simulated call center (seed {seed}, speed x{args.speed:g}) speaking AMI on "
          f"127.0.0.1:{port} (user {DEMO_USER}, secret {DEMO_SECRET})", flush=True)
    if args.duration > 0:
        loop.call_later(args.duration, stop.set)
    try:
        if args.no_daemon:
            await stop.wait()
            return 0
        return await _daemon(demo_settings(port, args.http_port, args.db, args.http_bind), stop)
    finally:
        pacer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pacer
        await server.close()


async def _daemon(settings: Settings, stop: asyncio.Event) -> int:
    from monitor.daemon import run_daemon

    base = f"http://{settings.http.bind}:{settings.http.port}"

    def ready(*_: object) -> None:
        url = settings.store.url
        where = url.removeprefix("sqlite+aiosqlite:///") if url.startswith("sqlite") else "the database"
        print(f"qmon demo: metrics at {base}/metrics, API at {base}/api/v1/queues and {base}/api/v1/calls, "
              f"records in {where}; Ctrl-C to stop", flush=True)

    return await run_daemon(settings, stop=stop, ready_cb=ready)
