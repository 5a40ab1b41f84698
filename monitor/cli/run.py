"""``qmon run``: load every section, check what the host must offer (ports, paths, token), run the daemon."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from monitor.cli.common import (
    CliError,
    add_settings_flags,
    check_exposure,
    check_listen,
    check_store_paths,
    check_writable_file,
    settings_flags,
    settings_from,
)
from monitor.settings import Settings

if TYPE_CHECKING:
    import asyncio  # annotations only: the event loop is imported when a command runs, not by qmon replay

log = logging.getLogger("qmon")


def add_parser(sub: Any) -> None:
    """Register ``qmon run``."""
    p = sub.add_parser("run", help="run the daemon beside Asterisk",
                       description="Run the daemon: AMI -> call records, metrics, store, survey. Settings: "
                       "TOML file < QMON_* env < these flags.")
    add_settings_flags(p)
    p.add_argument("--insecure-no-token", action="store_true",
                   help="allow a non-loopback HTTP bind without a token (the API serves caller numbers)")
    p.set_defaults(func=run)


def preflight(s: Settings, insecure_no_token: bool, prog: str) -> None:
    """Every check that can fail before anything starts: one clear CliError instead of a traceback later."""
    check_exposure(s.http.bind, s.http.token, insecure_no_token, prog)
    check_store_paths(s)
    if s.http.port:
        check_listen(s.http.bind, s.http.port, "http")
    if s.survey.enabled:
        check_writable_file(s.survey.state_path, "survey.state_path")
        if s.survey.port:
            check_listen(s.survey.bind, s.survey.port, "survey")


def setup_logging(level: str) -> None:
    """Console logging at ``level``; library chatter (Alembic's set-up lines) only at DEBUG."""
    from monitor.status import quiet_libraries

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(level)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Load settings (exit 2 on any problem), check the host, run until SIGTERM."""
    import asyncio
    settings = settings_from(args.config, env, {"ami", "tracker", "http", "store", "survey"}, settings_flags(args))
    preflight(settings, args.insecure_no_token, "qmon run")
    setup_logging(settings.log_level)
    from monitor.daemon import StartupError

    try:
        return asyncio.run(serve(settings))
    except StartupError as exc:  # a port taken between the pre-flight check and the bind, ...
        raise CliError(str(exc), 1) from None


async def serve(settings: Settings, stop: asyncio.Event | None = None,
                ready_line: Callable[[int], str] | None = None) -> int:
    """The daemon with the exporter's standard collectors and the operator's log lines ("ready", status)."""
    from monitor.daemon import Daemon, run_daemon
    from monitor.status import start_watch
    from monitor.web.exporter import exporter_registry

    registry = exporter_registry()
    tasks: list[asyncio.Task[None]] = []

    def ready(d: Daemon) -> None:
        amis = ", ".join(f"{a.name}={a.host}:{a.port}" for a in settings.ami)
        base = f"http://{settings.http.bind}:{d.http_port}"
        board = f", wallboard {base}/" if settings.wallboard.enabled else ""
        msg = (ready_line(d.http_port) if ready_line is not None else
               f"qmon ready: AMI logged in ({amis}), {base}/metrics{board}")
        tasks.append(start_watch(d, settings.status_interval_s, msg))

    try:
        return await run_daemon(settings, registry=registry, stop=stop, ready_cb=ready)
    finally:
        for t in tasks:
            t.cancel()
