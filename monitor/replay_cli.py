"""``qmon replay FILE... [--report json|table] [--abandon-short-s N] [--sl-threshold-s N] [--repeat-window 24h]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import phonenumbers

from monitor.ami.files import CaptureError
from monitor.core.repeat import WITHHELD_NUMBERS, parse_window
from monitor.core.tracker import TrackerConfig
from monitor.replay import UnsupportedStream, replay_files


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qmon replay", description="Replay recorded AMI streams and report.")
    p.add_argument("files", nargs="+", type=Path, help=".ami or .jsonl captures (optionally .gz)")
    p.add_argument("--report", choices=("json", "table"), default="json")
    p.add_argument("--abandon-short-s", type=float, default=5.0, help="short-abandon threshold (default 5)")
    p.add_argument("--sl-threshold-s", type=float, default=20.0, help="service-level threshold (default 20)")
    p.add_argument("--repeat-window", action="append", default=None,
                   help="repeat-caller window, repeatable (default 24h)")
    p.add_argument("--records", action="store_true", help="also print every call record (json report only)")
    p.add_argument("--late-grace-s", type=float, default=2.0,
                   help="a call is final this long after its caller's hang-up (default 2)")
    p.add_argument("--home-region", default="", help="ISO 3166 region of national caller numbers, e.g. PL")
    p.add_argument("--trunk-prefix", action="append", default=[], help="prefix a trunk adds to caller numbers")
    p.add_argument("--withheld", action="append", default=None,
                   help="a caller number meaning 'withheld', repeatable (default: anonymous, restricted, ...)")
    return p


def cmd_replay(argv: list[str], env: Mapping[str, str]) -> int:
    """Run the replay command."""
    args = _parser().parse_args(argv)
    windows = tuple(args.repeat_window or ["24h"])
    errors = []
    for w in windows:
        try:
            parse_window(w)
        except ValueError as exc:
            errors.append(f"--repeat-window: {exc}")
    if args.abandon_short_s < 0:
        errors.append("--abandon-short-s: must be >= 0")
    if args.sl_threshold_s <= 0:
        errors.append("--sl-threshold-s: must be > 0")
    if args.late_grace_s < 0:
        errors.append("--late-grace-s: must be >= 0")
    if args.home_region and args.home_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        errors.append(f"--home-region: {args.home_region!r} is not an ISO 3166 region (e.g. PL)")
    if errors:
        print("qmon replay: " + "; ".join(errors), file=sys.stderr)
        return 2
    config = TrackerConfig(abandon_short_s=args.abandon_short_s, repeat_windows=windows,
                           late_grace_s=args.late_grace_s, home_region=args.home_region,
                           trunk_prefixes=tuple(args.trunk_prefix),
                           withheld_numbers=tuple(args.withheld) if args.withheld else WITHHELD_NUMBERS)
    try:
        result = replay_files(args.files, config)
    except (CaptureError, UnsupportedStream) as exc:
        print(f"qmon replay: {exc}", file=sys.stderr)
        return 2
    report = result.report(args.sl_threshold_s)
    if result.skipped:
        print(f"qmon replay: skipped messages: {dict(result.skipped)}", file=sys.stderr)
    if args.report == "json":
        if args.records:
            report = {**report, "records": [r.to_dict() for r in result.records]}
        print(json.dumps(report, indent=2, sort_keys=False))
    else:
        print(format_table(report))
    return 0


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width per-queue table of the report."""
    cols = [
        ("queue", 10), ("entered", 7), ("answ", 5), ("aband", 5), ("short", 5), ("tmout", 5), ("empty", 5),
        ("jempty", 6), ("key", 4), ("rna", 4), ("xfer", 4), ("vm", 3), ("rep", 3), ("ASA", 6), ("AHT", 6),
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
            b["join_empty"], b["exit_key"], b["ring_no_answer"], b["transfers_blind"] + b["transfers_attended"],
            b["voicemail"], b["repeat_calls"], _f(b["wait_answered_s"]["mean"]), _f(b["talk_s"]["mean"]),
            _f(sl * 100 if sl is not None else None), _f(b["csat"]["mean"], 2),
            _f(sat * 100 if sat is not None else None),
        ]
        lines.append(" ".join(f"{_f(v):>{w}}" for v, (_, w) in zip(vals, cols, strict=True)))
    return "\n".join(lines)
