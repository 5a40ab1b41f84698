"""``qmon replay FILE...``: recorded AMI streams through the same tracker as live, then the report."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.cli.common import CliError, add_config_arg, settings_from


def add_parser(sub: Any) -> None:
    """Register ``qmon replay``."""
    p = sub.add_parser("replay", help="run recorded AMI streams through the tracker, print a report",
                       description="Replay recorded AMI streams (.ami or .jsonl captures, optionally .gz) and "
                       "report. Definitions come from [tracker] of --config; these flags override them.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help=".ami or .jsonl captures (optionally .gz)")
    p.add_argument("--report", choices=("json", "table"), default="json")
    p.add_argument("--abandon-short-s", metavar="S", help="short-abandon threshold (default 5)")
    p.add_argument("--sl-threshold-s", metavar="S", help="service-level threshold (default 20)")
    p.add_argument("--repeat-window", action="append", default=None, metavar="W",
                   help="repeat-caller window, repeatable (default 24h)")
    p.add_argument("--records", action="store_true", help="also print every call record (json report only)")
    p.add_argument("--late-grace-s", metavar="S",
                   help="a call is final this long after its caller's hang-up (default 2)")
    p.add_argument("--home-region", metavar="CC", help="ISO 3166 region of national caller numbers, e.g. PL")
    p.add_argument("--trunk-prefix", action="append", default=None, metavar="P",
                   help="prefix a trunk adds to caller numbers, repeatable")
    p.add_argument("--withheld", action="append", default=None, metavar="N",
                   help="a caller number meaning 'withheld', repeatable (default: anonymous, restricted, ...)")
    p.add_argument("--full-parse", action="store_true",
                   help="parse every .ami message, even events the tracker never reads (slower; same report)")
    add_config_arg(p)
    p.set_defaults(func=run, exit_now=True)  # one-shot: as the program, exits without tearing down (cli.main)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Replay, print the report; a file without a single AMI event is an error (never an empty report)."""
    import sys

    from monitor.ami.files import CaptureError, read_capture
    from monitor.ami.selection import tracker_selection
    from monitor.config import tracker_config
    from monitor.core.ingest import merge_records
    from monitor.core.tracker import CallTracker
    from monitor.replay import ReplayResult, UnsupportedStream, replay_messages

    if args.records and args.report != "json":
        raise CliError("--records: the call records are printed with --report json only")
    for flag, values in (("--trunk-prefix", args.trunk_prefix), ("--withheld", args.withheld)):
        if values is not None and not all(v.strip() for v in values):
            raise CliError(f"{flag}: empty value")
    t = settings_from(args.config, env, {"tracker"}, {
        "tracker.abandon_short_s": args.abandon_short_s, "tracker.sl_threshold_s": args.sl_threshold_s,
        "tracker.repeat_windows": _joined(args.repeat_window), "tracker.late_grace_s": args.late_grace_s,
        "tracker.home_region": args.home_region, "tracker.trunk_prefixes": _joined(args.trunk_prefix),
        "tracker.withheld_numbers": _joined(args.withheld)}).tracker
    tracker = CallTracker(tracker_config(t))  # one tracker: repeat callers span files
    total = ReplayResult()
    # Fast path: .ami events the tracker never reads are counted, never parsed (same report: tests/test_wire_fast.py).
    select = None if args.full_parse else tracker_selection(extra=(), gap_clock=True, defer=True)
    try:
        for path in args.files:
            stats: dict[str, int] = {}
            r = replay_messages(read_capture(path, stats, select), tracker=tracker)
            r.events += stats.pop("dropped_events", 0)
            if r.events == 0:
                bad = sum(stats.values())
                why = f" ({bad} unreadable line(s))" if bad else ""
                raise CliError(f"{path}: no AMI event in it{why}: not a capture of an AMI event stream?", 1)
            if sum(stats.values()):
                print(f"qmon replay: {path}: {sum(stats.values())} unreadable line(s) skipped", file=sys.stderr)
            merge_records(total.records, r.records)  # a late event in the next file may amend a record
            total.events += r.events
            for k, v in r.skipped.items():
                total.skipped[k] = total.skipped.get(k, 0) + v
            total.queues |= r.queues
    except (CaptureError, UnsupportedStream) as exc:  # Asterisk 11 or older: refused, never half counted
        raise CliError(str(exc)) from None
    report = total.report(t.sl_threshold_s)
    if total.skipped:
        print(f"qmon replay: skipped messages: {dict(total.skipped)}", file=sys.stderr)
    if args.report == "json":
        if args.records:
            report = {**report, "records": [r.to_dict() for r in total.records]}
        print(json.dumps(report, indent=2, sort_keys=False))
    else:
        print(format_table(report))
    return 0


def _joined(values: list[str] | None) -> str | None:
    """A repeatable flag as the loader's comma-separated list (None when not given)."""
    return ",".join(values) if values else None


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width per-queue table of the replay report."""
    cols = [
        ("queue", 10), ("entered", 7), ("answ", 5), ("aband", 5), ("short", 5), ("tmout", 5), ("empty", 5),
        ("jempty", 6), ("key", 4), ("full", 4), ("junav", 5), ("lunav", 5), ("wdraw", 5),
        ("rna", 4), ("xfer", 4), ("vm", 3), ("rep", 3), ("ASA", 6), ("AHT", 6),
        ("SL%", 6), ("CSAT", 5), ("csat%", 6),
    ]
    head = " ".join(f"{n:>{w}}" for n, w in cols)
    lines = [
        f"events {report['events']}  calls {report['calls']}  voicemail {report['voicemail_calls']}  "
        f"callers {report['callers']['distinct']}  repeat calls {report['callers']['repeat_calls']}",
        head, "-" * len(head),
    ]
    for q, b in report["queues"].items():
        sl = b["service_level"]
        sat = b["csat"]["satisfied_ratio"]
        vals = [
            q, b["entered"], b["answered"], b["abandoned"], b["abandoned_short"], b["timeout"], b["exit_empty"],
            b["join_empty"], b["exit_key"], b["full"], b["join_unavail"], b["leave_unavail"], b["withdraw"],
            b["ring_no_answer"], b["transfers_blind"] + b["transfers_attended"],
            b["voicemail"], b["repeat_calls"], _f(b["wait_answered_s"]["mean"]), _f(b["talk_s"]["mean"]),
            _f(sl * 100 if sl is not None else None), _f(b["csat"]["mean"], 2),
            _f(sat * 100 if sat is not None else None),
        ]
        lines.append(" ".join(f"{_f(v):>{w}}" for v, (_, w) in zip(vals, cols, strict=True)))
    return "\n".join(lines)
