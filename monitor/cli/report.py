"""``qmon report``: historical per-queue and per-agent report from the database (reads only, never creates)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from monitor.cli.common import CliError, add_db_args, one_line, pbx_name, require_database, store_settings
from monitor.core.servicelevel import DEFAULT_SL, SL_DEFINITIONS, sl_definition_map
from monitor.settings import StoreSettings

if TYPE_CHECKING:
    from monitor.core.records import CallRecord, MemberNote, OwedCall


def add_parser(sub: Any) -> None:
    """Register ``qmon report``."""
    p = sub.add_parser("report", help="historical per-queue/per-agent report from the database",
                       description="Historical per-queue and per-agent report from the database.")
    p.add_argument("--from", dest="from_", metavar="TIME", help="start (default: --to minus 1 day)")
    p.add_argument("--to", metavar="TIME", help="end, exclusive; a date includes that day (default: now)")
    p.add_argument("--queue", help="only this queue (agents: only their calls in it)")
    p.add_argument("--agent", help="only this agent in the agent table")
    p.add_argument("--pbx", metavar="NAME", type=pbx_name,
                   help="only calls of this PBX (the [[ami]] name, or import-queue-log --pbx)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--by", choices=("day", "hour"), help="also break down by day or hour")
    p.add_argument("--tz", default="UTC", help="time zone of dates and buckets (default UTC)")
    p.add_argument("--sl-threshold-s", type=float, default=20.0, help="service-level threshold (default 20)")
    p.add_argument("--sl-definition", default=DEFAULT_SL, choices=SL_DEFINITIONS,
                   help=f"the service level shown as 'sl' (default {DEFAULT_SL})")
    p.add_argument("--queue-sl", action="append", default=[], metavar="QUEUE=DEFINITION",
                   help="another definition for one queue (repeatable)")
    p.add_argument("--horizon-s", type=float, default=14_400.0,
                   help="true abandonment: an owed callback not reached within this many seconds (default 4 h)")
    add_db_args(p)
    p.set_defaults(func=run)


MAX_TS = 253402300799.0  # 9999-12-31T23:59:59Z, the HTTP API's bound too (monitor.web.params)


def parse_report_time(text: str, tz: tzinfo, end: bool = False, flag: str = "--from") -> float:
    """Epoch seconds from ``YYYY-MM-DD`` (a whole day: ``--to`` includes it), an ISO datetime in ``tz`` or
    epoch seconds; CliError naming the accepted forms, or the range (1970 to 9999, as the HTTP API)."""
    t = text.strip()
    out_of_range = CliError(f"{flag}: {text!r} is out of range (1970 to 9999)")
    try:
        value = float(t)
    except ValueError:
        try:
            d = datetime.fromisoformat(t)
        except ValueError:
            raise CliError(f"bad time {text!r}: use YYYY-MM-DD, an ISO datetime or epoch seconds") from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=tz)
        try:
            if end and len(t) == 10:
                d += timedelta(days=1)
            value = d.timestamp()
        except (OverflowError, ValueError, OSError):
            raise out_of_range from None
    if not math.isfinite(value) or not 0.0 <= value <= MAX_TS:
        raise out_of_range
    try:
        datetime.fromtimestamp(value, tz)  # the report prints it in --tz: 9999-12-31 23:00 UTC is year 10000 east
    except (OverflowError, ValueError, OSError):
        raise out_of_range from None
    return value


def _range(args: argparse.Namespace) -> tuple[tzinfo, float, float]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz: tzinfo = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(f"--tz: unknown time zone {args.tz!r}") from None
    to_ts = parse_report_time(args.to, tz, end=True, flag="--to") if args.to else time.time()
    from_ts = parse_report_time(args.from_, tz) if args.from_ else max(0.0, to_ts - 86400.0)
    if from_ts >= to_ts:
        raise CliError("--from must be before --to")
    return tz, from_ts, to_ts


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Read the calls of the range, print the report (says which database it read)."""
    import asyncio

    from monitor.core.report import build_report
    from monitor.settings import WAIT_BUCKETS_S
    from monitor.store.engine import masked
    from monitor.store.history import Extras, history

    tz, from_ts, to_ts = _range(args)
    if args.sl_threshold_s not in WAIT_BUCKETS_S:
        raise CliError(f"--sl-threshold-s: {args.sl_threshold_s:g} is not a bound of the wait histogram "
                       f"(one of {', '.join(str(b) for b in WAIT_BUCKETS_S)})")
    if args.horizon_s <= 0:
        raise CliError("--horizon-s must be > 0")
    try:
        sl_defs = sl_definition_map(args.sl_definition, tuple(args.queue_sl))
    except ValueError as exc:
        raise CliError(f"--queue-sl: {exc}") from None
    s = store_settings(args, env).store
    require_database(s.url)
    records, members, owed = asyncio.run(_load(s, from_ts, to_ts, args.pbx))
    if args.pbx is not None:
        records = [r for r in records if r.pbx == args.pbx]
    extras = Extras((from_ts, to_ts), members, owed, args.horizon_s, time.time(), sl_defs)
    rep = history(records, args.sl_threshold_s, args.queue, args.agent, args.by, tz, extras)
    if args.queue is not None:  # the header's totals are those of the queue shown, not of every call
        rep["report"] = build_report([r for r in records if any(g.queue == args.queue for g in r.segments)], 0,
                                     args.sl_threshold_s)
    for note in nothing_matched(args, records, rep):
        print(f"qmon report: {note}", file=sys.stderr)
    rep = {"database": masked(s.url), "pbx": args.pbx, "from": datetime.fromtimestamp(from_ts, tz).isoformat(),
           "to": datetime.fromtimestamp(to_ts, tz).isoformat(), "sl_threshold_s": args.sl_threshold_s, **rep}
    if args.format == "json":
        print(json.dumps(rep, indent=2))
    elif args.format == "csv":
        print(format_csv(rep), end="")
    else:
        print(format_table(rep))
    return 0


def nothing_matched(args: argparse.Namespace, records: list[CallRecord], rep: dict[str, Any]) -> list[str]:
    """One note per filter that matched nothing (an empty table is then never mistaken for a quiet day)."""
    notes: list[str] = []
    if not records:
        notes.append(f"no calls in this window{f' for --pbx {args.pbx}' if args.pbx is not None else ''}")
    elif args.queue is not None and not rep["queues"]:
        notes.append(f"--queue {args.queue}: no call visited this queue in this window")
    if records and args.agent is not None and not rep["agents"]:
        notes.append(f"--agent {args.agent}: no call of this agent in this window")
    return notes


_LOOKBACK_S = 86_400.0  # member changes this far before --from: sessions and pauses already open at its start


async def _load(s: StoreSettings, from_ts: float, to_ts: float, pbx: str | None = None,
                ) -> tuple[list[CallRecord], list[MemberNote], list[OwedCall]]:
    """The stored calls of [from_ts, to_ts), member changes (from a day before) and owed calls of the range.

    CliError when the database is unreachable or has no schema.
    """
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from monitor.store.engine import head_revision, make_engine, masked, schema_revision
    from monitor.store.owed import member_notes_between, owed_between
    from monitor.store.queries import records_between

    engine = make_engine(s.url, s.connect_timeout_s, s.sqlite_busy_timeout_s, read_only=True)
    try:
        try:
            rev = await schema_revision(engine)
        except Exception as exc:
            raise CliError(f"{masked(s.url)}: cannot read: {one_line(exc)}", 1) from None
        if rev is None:
            raise CliError(f"{masked(s.url)}: not a qmon database (no schema)", 1)
        if rev != head_revision():
            raise CliError(f"{masked(s.url)}: schema at {rev}, this qmon needs {head_revision()}: run "
                           "`qmon db upgrade`", 1)
        sessions = async_sessionmaker(engine)
        return (await records_between(sessions, from_ts, to_ts),
                await member_notes_between(sessions, from_ts - _LOOKBACK_S, to_ts, pbx),
                await owed_between(sessions, from_ts, to_ts, pbx))
    finally:
        await engine.dispose()


def _f(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


_SHORT = {"abandoned_short": "short", "exit_empty": "empty", "join_empty": "jempty", "join_unavail": "junavail",
          "leave_unavail": "lunavail", "service_level": "SL",
          "longest_wait_s": "maxwait", "repeat_calls": "rep", "repeat_rate": "reprate", "csat_responses": "resp",
          "csat_mean": "csat", "csat_satisfied_ratio": "csat%", "csat_response_rate": "rrate",
          "completed_by_agent": "byagent", "completed_by_caller": "bycaller", "ring_no_answer": "rna",
          "transfers": "xfer", "voicemail": "vm", "sl_definition": "sldef", "sl_answered": "SL/ans",
          "sl_answered_abandoned": "SL2", "sl_offered": "SL/off", "sl_offered_no_short": "SL/off-short",
          "abandon_rate": "abn%", "abandon_rate_no_short": "abn%-short", "true_abandon_rate": "trueabn%",
          "logged_in_s": "login", "paused_s": "paused", "pause_reasons": "pauses", "wrapup_s": "wrapup",
          "occupancy": "occ"}


def _table(title: str, rows: Mapping[str, Mapping[str, Any]], cols: tuple[str, ...]) -> list[str]:
    heads = [_SHORT.get(c, c.removesuffix("_s")) for c in cols]
    w = [max(len(h), *(len(_f(r[c])) for r in rows.values())) if rows else len(h) for h, c in zip(heads, cols,
                                                                                                   strict=True)]
    nw = max([len(title), *(len(n) for n in rows)])
    lines = [" ".join([f"{title:<{nw}}", *(f"{h:>{x}}" for h, x in zip(heads, w, strict=True))])]
    lines += [" ".join([f"{n:<{nw}}", *(f"{_f(r[c]):>{x}}" for c, x in zip(cols, w, strict=True))])
              for n, r in rows.items()]
    return lines


def format_table(rep: dict[str, Any]) -> str:
    """Queue and agent tables (then one pair per bucket), under a line naming the database and range."""
    from monitor.store.history import AGENT_COLUMNS, QUEUE_COLUMNS

    r = rep["report"]
    pbx = f"  pbx {rep['pbx']}" if rep.get("pbx") else ""
    out = [f"database {rep['database']}{pbx}",
           f"{rep['from']} .. {rep['to']}  calls {r['calls']}  voicemail {r['voicemail_calls']}  "
           f"callers {r['callers']['distinct']}  repeat calls {r['callers']['repeat_calls']}", ""]
    out += [*_table("queue", rep["queues"], QUEUE_COLUMNS), "", *_table("agent", rep["agents"], AGENT_COLUMNS)]
    for b in rep.get("buckets", []):
        out += ["", f"== {b['start']}", *_table("queue", b["queues"], QUEUE_COLUMNS)]
        out += _table("agent", b["agents"], AGENT_COLUMNS)
    return "\n".join(out)


def format_csv(rep: dict[str, Any]) -> str:
    """One row per (bucket, queue) and (bucket, agent); bucket ``total`` for the whole range."""
    from monitor.store.history import AGENT_COLUMNS, QUEUE_COLUMNS

    buf = io.StringIO()
    cols = sorted(set(QUEUE_COLUMNS) | set(AGENT_COLUMNS), key=(list(QUEUE_COLUMNS) + list(AGENT_COLUMNS)).index)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["bucket", "scope", "name", *cols])
    for b in [{"start": "total", **rep}, *rep.get("buckets", [])]:
        for scope in ("queues", "agents"):
            for name, row in b[scope].items():
                w.writerow([b["start"], scope[:-1], name, *("" if row.get(c) is None else row[c] for c in cols)])
    return buf.getvalue()
