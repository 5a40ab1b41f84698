"""``qmon import-queue-log FILE...``: backfill call records from Asterisk queue_logs (``.gz`` read as well)."""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from monitor.cli.common import CliError, add_db_args, check_store_paths, pbx_name, settings_from

if TYPE_CHECKING:
    from monitor.settings import Settings
    from monitor.store.queue_log import QueueLog


def add_parser(sub: Any) -> None:
    """Register ``qmon import-queue-log``."""
    p = sub.add_parser("import-queue-log", help="load an Asterisk queue_log into the database",
                       description="Load Asterisk queue_log files (plain or gzipped, as logrotate leaves them) "
                       "into the database; importing twice changes nothing.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="queue_log file(s), optionally .gz")
    p.add_argument("--pbx", default="default", type=pbx_name, help="PBX name the calls belong to (the [[ami]] name)")
    p.add_argument("--abandon-short-s", metavar="S", help="short-abandon threshold (default: [tracker], 5)")
    p.add_argument("--repeat-window", action="append", default=None, metavar="W",
                   help="repeat-caller window, repeatable (default: [tracker], 24h)")
    add_db_args(p)
    p.set_defaults(func=run)


def open_text(path: Path) -> IO[str]:
    """A text file, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise CliError(f"{path}: cannot open: {exc.strerror}") from None
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", errors="replace")
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def read_queue_log(path: Path, pbx: str, abandon_short_s: float) -> QueueLog:
    """Parse one file; CliError when nothing in it is a queue_log line (an .ami capture, a binary, empty)."""
    from monitor.store.queue_log import parse_queue_log

    try:
        with open_text(path) as fh:
            log = parse_queue_log(fh, pbx, abandon_short_s)
    except (OSError, EOFError) as exc:
        raise CliError(f"{path}: read error: {exc}", 1) from None
    if log.lines == 0:
        raise CliError(f"{path}: empty: nothing to import", 1)
    if log.bad_lines == log.lines:
        raise CliError(f"{path}: not a queue_log: none of its {log.lines} line(s) is time|callid|queue|agent|event",
                       1)
    return log


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Parse every file first (a wrong file stops before the database is touched), then import."""
    import asyncio

    s = settings_from(args.config, env, {"store", "tracker"}, {
        "store.url": args.db, "tracker.abandon_short_s": args.abandon_short_s,
        "tracker.repeat_windows": ",".join(args.repeat_window) if args.repeat_window else None})
    dirs = [str(f) for f in args.files if f.is_dir()]
    if dirs:
        raise CliError(f"{', '.join(dirs)}: is a directory, not a queue_log file")
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise CliError(f"no such file: {', '.join(missing)}")
    logs = [(f, read_queue_log(f, args.pbx, s.tracker.abandon_short_s)) for f in args.files]
    check_store_paths(s)
    return asyncio.run(_import(s, logs, args.pbx))


async def _import(s: Settings, logs: list[tuple[Path, QueueLog]], pbx: str) -> int:
    from monitor.store.engine import masked
    from monitor.store.queue_log import import_queue_log
    from monitor.store.store import Store

    store = Store(s.store)
    await store.start(journal=False)  # the daemon's journal is not ours
    try:
        ok, why = await store.writable()
        if not ok:
            raise CliError(f"{masked(s.store.url)}: {why}", 1)
        for f, log in logs:
            res = await import_queue_log(store, log, pbx, s.tracker.repeat_windows)
            for number, line, why in log.ignored:  # every line not used, with its reason: nothing dropped silently
                print(f"{f}:{number}: ignored: {why}: {line}", file=sys.stderr)
            print(f"{f}: " + ", ".join(f"{k} {v}" for k, v in res.items()))
        return 0
    finally:
        await store.close()
