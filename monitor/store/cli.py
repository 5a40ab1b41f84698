"""``qmon db upgrade|current|prune``: database maintenance (and the URL/settings lookup shared by store commands)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import async_sessionmaker

from monitor.settings import StoreSettings
from monitor.store.engine import head_revision, make_engine, masked, schema_revision, upgrade
from monitor.store.queries import prune


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


def add_db_args(p: argparse.ArgumentParser) -> None:
    """The ``--db URL`` and ``--config FILE`` options every store command takes."""
    p.add_argument("--db", metavar="URL", help="database URL (default: [store] url of the config, "
                   "else $QMON_STORE_URL, else sqlite+aiosqlite:///qmon.db)")
    p.add_argument("--config", metavar="FILE", help="qmon.toml to read [store] settings from")


def store_settings(args: argparse.Namespace, env: Mapping[str, str]) -> StoreSettings:
    """Store settings from ``--config`` (via ``monitor.config``) or defaults, then $QMON_STORE_URL, then ``--db``."""
    base = StoreSettings()
    if getattr(args, "config", None):
        from monitor.config import ConfigError, load_settings  # lazy: the store commands need no more of it

        try:
            # Store commands never talk to Asterisk: a missing AMI secret must not stop `qmon db upgrade`.
            base = load_settings(["--config", args.config], {"QMON_AMI_SECRET": "-", **env}).store
        except ConfigError as exc:
            raise UsageError(f"--config: invalid configuration ({'; '.join(exc.problems)})") from None
    elif env.get("QMON_STORE_URL"):
        base = dataclasses.replace(base, url=env["QMON_STORE_URL"])
    if getattr(args, "db", None):
        base = dataclasses.replace(base, url=args.db)
    return base


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qmon db", description="Database maintenance.")
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("upgrade", help="apply the schema migrations shipped with qmon")
    add_db_args(up)
    cur = sub.add_parser("current", help="print the schema revision of the database and of this qmon")
    add_db_args(cur)
    pr = sub.add_parser("prune", help="delete calls, agent events and survey results older than a retention period")
    pr.add_argument("--older-than", type=float, metavar="DAYS", help="retention in days "
                    "(default: [store] retention_days)")
    add_db_args(pr)
    return p


async def _run(action: str, s: StoreSettings, older_than_days: float | None) -> int:
    engine = make_engine(s.url, s.connect_timeout_s, s.sqlite_busy_timeout_s)
    try:
        if action == "upgrade":
            rev = await upgrade(engine)
            print(f"database {masked(s.url)} at schema revision {rev}")
        elif action == "current":
            print(f"database: {await schema_revision(engine) or 'empty'}; this qmon: {head_revision()}")
        else:
            assert older_than_days is not None
            counts = await prune(async_sessionmaker(engine), time.time() - older_than_days * 86400.0)
            print(f"pruned {counts['calls']} call(s), {counts['agent_events']} agent event(s) and "
                  f"{counts.get('survey_results', 0)} survey result(s) older than {older_than_days:g} day(s)")
        return 0
    finally:
        await engine.dispose()


def cmd_db(argv: list[str], env: Mapping[str, str]) -> int:
    """Run ``qmon db``."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        s = store_settings(args, env)
    except UsageError as exc:
        print(f"qmon db: {exc}", file=sys.stderr)
        return 2
    days = getattr(args, "older_than", None)
    if args.action == "prune":
        days = days if days is not None else s.retention_days
        if days is None or days <= 0:
            print("qmon db prune: --older-than DAYS (> 0) is required (or [store] retention_days)",
                  file=sys.stderr)
            return 2
    try:
        return asyncio.run(_run(args.action, s, days))
    except Exception as exc:
        print(f"qmon db {args.action}: {masked(s.url)}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
