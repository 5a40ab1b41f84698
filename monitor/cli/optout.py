"""``qmon optout add|remove|list [NUMBER]``: the survey callback opt-out list (in ``survey.state_path``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.cli.common import CliError, add_config_arg, check_writable_file, settings_from
from monitor.config import number_normalizer


def add_parser(sub: Any) -> None:
    """Register ``qmon optout``."""
    p = sub.add_parser("optout", help="manage the survey callback opt-out list",
                       description="Numbers never surveyed (inline or callback).")
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument("number", nargs="?")
    p.add_argument("--state", metavar="PATH", help="survey state SQLite file (default: [survey] state_path, "
                   "$QMON_SURVEY_STATE_PATH, qmon-survey.db)")
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Exit 0 on success, 1 when nothing changed, 2 on bad input; ``list`` never creates the file."""
    from monitor.survey.state import SurveyState, optout_key

    if args.action != "list" and not args.number:
        raise CliError(f"{args.action}: a NUMBER is required")
    # [tracker] too: the list must key numbers as the tracker does (home_region, trunk_prefixes, withheld).
    settings = settings_from(args.config, env, {"survey", "tracker"}, {"survey.state_path": args.state})
    path = settings.survey.state_path
    if Path(path).is_dir():
        raise CliError(f"survey.state_path: {path} is a directory")
    if args.action == "list" and not Path(path).is_file():
        print(f"qmon optout: no survey state at {path} yet: the list is empty", file=sys.stderr)
        return 0
    if args.action != "list":
        try:  # before the file is opened (or created)
            optout_key(args.number, number_normalizer(settings.tracker))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        check_writable_file(path, "survey.state_path")
    try:
        state = SurveyState(path, number_normalizer(settings.tracker))
    except Exception as exc:  # not a database, unreadable: say so clearly
        raise CliError(f"cannot open {path}: {exc}") from None
    try:
        if args.action == "list":
            for number, ts in state.optouts():
                print(f"{number}\t{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))}")
            return 0
        try:
            changed = (state.add_optout(args.number, time.time()) if args.action == "add"
                       else state.remove_optout(args.number))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        verb = "added" if args.action == "add" else "removed"
        print(f"{args.number}: {verb}" if changed else f"{args.number}: nothing to do")
        return 0 if changed else 1
    finally:
        state.close()
