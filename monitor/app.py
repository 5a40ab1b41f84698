"""``qmon run``: load the settings, then :func:`monitor.daemon.run_daemon` (the wiring) until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping

from monitor.daemon import Daemon, StartupError, run_daemon

log = logging.getLogger("qmon")


def cmd_run(argv: list[str], env: Mapping[str, str]) -> int:
    """``qmon run [--config FILE] [flags]``: load settings (exit 2 on any problem), run until SIGTERM.

    A part that cannot start (the HTTP port taken, ...) is one line on stderr and exit 1.
    """
    from monitor.config import load_or_report

    settings = load_or_report(argv, env)
    if settings is None:
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(d: Daemon) -> None:
        log.info("qmon ready: http://%s:%d/metrics, AMI %s", settings.http.bind, d.http_port,
                 ", ".join(f"{a.name}={a.host}:{a.port}" for a in settings.ami))

    try:
        return asyncio.run(run_daemon(settings, ready_cb=ready))
    except StartupError as exc:
        print(f"qmon: {exc}", file=sys.stderr)
        return 1
