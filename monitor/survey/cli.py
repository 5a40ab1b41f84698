"""``qmon optout add|remove|list [NUMBER] [--state PATH]``: the survey callback opt-out list."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping

from monitor.settings import SurveySettings
from monitor.survey.state import SurveyState


def cmd_optout(argv: list[str], env: Mapping[str, str]) -> int:
    """Manage the opt-out list; exit 0 on success, 1 when nothing changed, 2 on bad input."""
    p = argparse.ArgumentParser(prog="qmon optout", description="Numbers never surveyed (inline or callback).")
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument("number", nargs="?")
    p.add_argument("--state", default=env.get("QMON_SURVEY_STATE_PATH") or SurveySettings().state_path,
                   help="survey state SQLite file (default: $QMON_SURVEY_STATE_PATH or %(default)s)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.action != "list" and not args.number:
        print(f"qmon optout {args.action}: a NUMBER is required", file=sys.stderr)
        return 2
    try:
        state = SurveyState(args.state)
    except Exception as exc:  # unreadable path, not a database: say so clearly
        print(f"qmon optout: cannot open {args.state}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            for number, ts in state.optouts():
                print(f"{number}\t{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))}")
            return 0
        try:
            changed = (state.add_optout(args.number, time.time()) if args.action == "add"
                       else state.remove_optout(args.number))
        except ValueError as exc:
            print(f"qmon optout: {exc}", file=sys.stderr)
            return 2
        verb = "added" if args.action == "add" else "removed"
        print(f"{args.number}: {verb}" if changed else f"{args.number}: nothing to do")
        return 0 if changed else 1
    finally:
        state.close()
