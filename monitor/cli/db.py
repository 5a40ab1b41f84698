"""``qmon db upgrade|current|prune``: database maintenance (only ``upgrade`` may create a database)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from monitor.cli.common import CliError, add_db_args, check_store_paths, one_line, require_database, store_settings
from monitor.settings import StoreSettings


def add_parser(sub: Any) -> None:
    """Register ``qmon db`` and its actions."""
    p = sub.add_parser("db", help="database maintenance: upgrade, current, prune", description="Database "
                       "maintenance.")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    up = acts.add_parser("upgrade", help="apply the schema migrations shipped with qmon (creates the database)")
    add_db_args(up)
    cur = acts.add_parser("current", help="print the schema revision of the database and of this qmon")
    add_db_args(cur)
    pr = acts.add_parser("prune", help="delete calls, agent events and survey results older than a retention "
                         "period")
    pr.add_argument("--older-than", type=float, metavar="DAYS", help="retention in days "
                    "(default: [store] retention_days)")
    add_db_args(pr)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run one action; exit 1 when the database cannot be reached or has no schema."""
    import asyncio

    settings = store_settings(args, env)
    s = settings.store
    days = None
    if args.action == "prune":
        days = args.older_than if args.older_than is not None else s.retention_days
        if days is None or days <= 0:
            raise CliError("--older-than DAYS (> 0) is required (or [store] retention_days)")
    if args.action == "upgrade":
        check_store_paths(settings)
    else:
        require_database(s.url)
    return asyncio.run(_run(args.action, s, days))


async def _run(action: str, s: StoreSettings, older_than_days: float | None) -> int:
    import time

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from monitor.store.engine import head_revision, make_engine, masked, schema_revision, upgrade
    from monitor.store.queries import prune

    engine = make_engine(s.url, s.connect_timeout_s, s.sqlite_busy_timeout_s, read_only=action == "current")
    try:
        if action == "upgrade":
            rev = await upgrade(engine)
            print(f"database {masked(s.url)} at schema revision {rev}")
        elif action == "current":
            print(f"database {masked(s.url)}: {await schema_revision(engine) or 'empty'}; "
                  f"this qmon: {head_revision()}")
        else:
            assert older_than_days is not None
            counts = await prune(async_sessionmaker(engine), time.time() - older_than_days * 86400.0)
            print(f"pruned {counts['calls']} call(s), {counts['agent_events']} agent event(s) and "
                  f"{counts.get('survey_results', 0)} survey result(s) older than {older_than_days:g} day(s)")
        return 0
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"{action}: {masked(s.url)}: {one_line(exc)}", 1) from None
    finally:
        await engine.dispose()
