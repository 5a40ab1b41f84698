"""``qmon demo``: the daemon against the built-in simulated call center (:mod:`monitor.sim`) on a local port."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.cli.common import (
    CliError,
    check_exposure,
    check_listen,
    check_store_paths,
    check_writable_file,
    split_listen_address,
)
from monitor.settings import AmiSettings, HttpSettings, Settings, StoreSettings, SurveySettings, TrackerSettings

if TYPE_CHECKING:
    import asyncio  # annotations only: the event loop is imported when a command runs, not by qmon replay

    from monitor.sim.scenario import Simulation
    from monitor.sim.server import AmiSimServer


def add_parser(sub: Any) -> None:
    """Register ``qmon demo``."""
    p = sub.add_parser("demo", help="run the daemon against a built-in simulated call center",
                       description="Run qmon against a simulated call center (queues, agents, callers) that "
                       "speaks the Asterisk Manager Interface locally.")
    p.add_argument("--port-ami", type=int, default=0, help="simulator AMI port (default: any free port)")
    p.add_argument("--http-port", type=int, default=9465, help="qmon HTTP port for /metrics and /api/v1")
    p.add_argument("--survey-port", type=int, default=0, help="qmon FastAGI survey port the simulated callers "
                   "answer the post-call survey on (default: any free port)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same calls)")
    p.add_argument("--http-bind", default="127.0.0.1", help="qmon HTTP address (0.0.0.0 inside a container: "
                   "then set QMON_HTTP_TOKEN)")
    p.add_argument("--web.listen-address", dest="listen_address", metavar="HOST:PORT",
                   help="--http-bind and --http-port in one (the Prometheus exporters' flag)")
    p.add_argument("--db", default="qmon-demo.db",
                   help="SQLite file for call records (default ./qmon-demo.db), or a database URL")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many real seconds (0: run until ^C)")
    p.add_argument("--no-daemon", action="store_true", help="run the simulator alone (connect your own client)")
    p.add_argument("--insecure-no-token", action="store_true",
                   help="allow a non-loopback HTTP bind without QMON_HTTP_TOKEN")
    p.set_defaults(func=run)


def demo_settings(ami_port: int, http_port: int, db: str, http_bind: str = "127.0.0.1", token: str = "",
                  log_level: str = "INFO", survey_port: int = 0) -> Settings:
    """Settings of the daemon pointed at the simulator: SQLite storage, the FastAGI survey server on loopback.

    The survey's own state (cooldowns, opt-outs) sits beside the demo database, never in a production file.
    ``survey_port`` 0: the caller picks a free port (the simulator must know it before the daemon starts).
    """
    from monitor.config import db_url, sqlite_path
    from monitor.sim import DEMO_SECRET, DEMO_USER
    from monitor.sim.scenario import DEFAULT_QUEUES

    url = db_url(db)
    path = sqlite_path(url)
    if path is not None:
        resolved = Path(path).resolve()
        url, journal = f"sqlite+aiosqlite:///{resolved}", str(resolved.with_suffix(".journal.jsonl"))
        state = str(resolved.with_name(resolved.stem + "-survey.db"))
    else:
        journal, state = "qmon-demo.journal.jsonl", "qmon-demo-survey.db"
    return Settings(
        ami=(AmiSettings(name="demo", host="127.0.0.1", port=ami_port, username=DEMO_USER, secret=DEMO_SECRET),),
        tracker=TrackerSettings(queues=tuple(q.name for q in DEFAULT_QUEUES)),
        http=HttpSettings(bind=http_bind, port=http_port, token=token),
        store=StoreSettings(url=url, journal_path=journal),
        survey=SurveySettings(enabled=True, bind="127.0.0.1", port=survey_port, state_path=state),
        log_level=log_level,
    )


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Check the flags and the host, then run the simulator (and the daemon) until ^C or ``--duration``."""
    import asyncio

    from monitor.cli.common import settings_from
    from monitor.cli.run import setup_logging

    if not (math.isfinite(args.speed) and args.speed > 0):
        raise CliError(f"--speed: must be > 0, got {args.speed:g}")
    if not (math.isfinite(args.duration) and args.duration >= 0):
        raise CliError(f"--duration: must be seconds >= 0 (0: until Ctrl-C), got {args.duration:g}")
    if args.listen_address is not None:
        args.http_bind, port = split_listen_address(args.listen_address)
        args.http_port = int(port)
    # The demo takes the HTTP token and the log level from the environment like `qmon run`; the rest is its own.
    base = settings_from(None, {k: v for k, v in env.items() if k != "QMON_CONFIG"}, {"http"})
    settings = replace(demo_settings(0, args.http_port, args.db, args.http_bind, base.http.token, base.log_level),
                       status_interval_s=base.status_interval_s)
    if not args.no_daemon:
        check_exposure(args.http_bind, settings.http.token, args.insecure_no_token, "qmon demo")
        check_store_paths(settings, "--db")
        check_writable_file(settings.survey.state_path, "survey state")
        if args.http_port:
            check_listen(args.http_bind, args.http_port, "--http-port")
        if args.survey_port:
            check_listen("127.0.0.1", args.survey_port, "--survey-port")
        survey_port = args.survey_port or free_port()
        settings = replace(settings, survey=replace(settings.survey, port=survey_port))
    if args.port_ami:
        check_listen("127.0.0.1", args.port_ami, "--port-ami")
    setup_logging(settings.log_level)
    from monitor.daemon import StartupError

    try:
        return asyncio.run(_main(args, settings))
    except StartupError as exc:
        raise CliError(str(exc), 1) from None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the simulator must know the survey port before the daemon binds it)."""
    import socket  # here: every command module is imported by `qmon` (qmon replay's start-up is measured)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoParts:
    """The simulator's handles (tests read the ground truth and the stream sent)."""

    sim: Simulation
    server: AmiSimServer


async def _main(args: argparse.Namespace, settings: Settings, *, record: bool = False,
                on_start: Callable[[DemoParts], object] | None = None) -> int:
    """The simulator (and, unless ``--no-daemon``, the daemon on it) until ``stop``: SIGINT/SIGTERM/--duration."""
    import asyncio

    from monitor.sim import DEMO_SECRET, DEMO_USER
    from monitor.sim.model import Knobs
    from monitor.sim.scenario import Simulation
    from monitor.sim.server import AmiSimServer

    seed = args.seed if args.seed is not None else int(time.time())
    agi = None if args.no_daemon else settings.survey.port
    knobs = Knobs(survey_via="agi", agi_url=f"agi://127.0.0.1:{agi}") if agi else Knobs()
    start = time.time()
    if args.duration > 0 and args.speed > 1:
        # Faster than life: begin in the past, so no call lies in the future when the run ends (`qmon report`
        # right after the demo reads up to now).
        start -= (args.speed - 1) * args.duration
    sim = Simulation(seed, start, knobs=knobs)
    server = AmiSimServer(sim, speed=args.speed, username=DEMO_USER, secret=DEMO_SECRET, agi_port=agi,
                          record=record)
    port = await server.start("127.0.0.1", args.port_ami)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal  # here, as socket above

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    pacer = asyncio.create_task(server.run(), name="demo-simulator")
    print(f"qmon demo: simulated call center (seed {seed}, speed x{args.speed:g}) speaking AMI on "
          f"127.0.0.1:{port} (user {DEMO_USER}, secret {DEMO_SECRET})", flush=True)
    if on_start is not None:
        on_start(DemoParts(sim, server))
    if args.duration > 0:
        loop.call_later(args.duration, stop.set)
    try:
        if args.no_daemon:
            await stop.wait()
            return 0
        return await _daemon(replace(settings, ami=(replace(settings.ami[0], port=port),)), stop)
    finally:
        pacer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pacer
        await server.close()


def urls(base: str, where: str, survey_port: int) -> list[str]:
    """The lines the demo prints once the daemon is up: every URL it serves, where records go."""
    return [
        f"qmon demo: wallboard   {base}/",
        f"qmon demo: metrics     {base}/metrics",
        f"qmon demo: API         {base}/api/v1/queues  {base}/api/v1/calls  {base}/api/v1/surveys  "
        f"{base}/api/v1/openapi.json",
        f"qmon demo: surveys     the simulated callers answer over FastAGI at agi://127.0.0.1:{survey_port}/csat",
        f"qmon demo: records in {where} (qmon report --db {where}); Ctrl-C to stop",
    ]


async def _daemon(settings: Settings, stop: asyncio.Event) -> int:
    from monitor.cli.run import serve
    from monitor.config import sqlite_path

    where = sqlite_path(settings.store.url) or "the database"
    shown = "localhost" if settings.http.bind in ("0.0.0.0", "::") else settings.http.bind
    if ":" in shown:
        shown = f"[{shown}]"

    def ready(http_port: int) -> str:
        lines = urls(f"http://{shown}:{http_port}", where, settings.survey.port)
        if settings.http.token:
            lines.append("qmon demo: the API wants the header  Authorization: Bearer $QMON_HTTP_TOKEN")
        print("\n".join(lines), file=sys.stdout, flush=True)
        return "qmon ready: AMI logged in (demo simulator)"

    return await serve(settings, stop, ready)
