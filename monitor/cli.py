"""The ``qmon`` command: dispatches subcommands to the module that owns them (imported lazily)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping

# name -> (module, function, one-line help). Each function is ``f(argv, env) -> exit code`` and parses
# its own arguments, so subcommands stay independent of each other.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("monitor.app", "cmd_run", "run the daemon beside Asterisk"),
    "demo": ("monitor.demo", "cmd_demo", "run the daemon against a built-in simulated call center"),
    "check-config": ("monitor.config", "cmd_check_config", "print the effective settings, secrets masked"),
    "replay": ("monitor.replay_cli", "cmd_replay", "run recorded AMI streams through the tracker, print a report"),
    "record": ("monitor.ami.recorder", "cmd_record", "save a live AMI stream as an .ami capture"),
    "db": ("monitor.store.cli", "cmd_db", "database maintenance: upgrade, prune"),
    "report": ("monitor.store.report_cli", "cmd_report", "historical per-queue/per-agent report from the database"),
    "import-queue-log": ("monitor.store.queue_log", "cmd_import", "load an Asterisk queue_log into the database"),
    "optout": ("monitor.survey.cli", "cmd_optout", "manage the survey callback opt-out list"),
}


def _usage() -> str:
    lines = ["usage: qmon COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<17} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "qmon COMMAND --help for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``qmon`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if env is None else env)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from monitor import __version__

        print(f"qmon {__version__}")
        return 0
    spec = COMMANDS.get(args[0])
    if spec is None:
        print(f"qmon: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = spec
    handler: Callable[[list[str], Mapping[str, str]], int] = getattr(importlib.import_module(module), func)
    return handler(args[1:], environ)


if __name__ == "__main__":
    raise SystemExit(main())
