"""The ``qmon`` command: one argparse parser with a subcommand per module of this package.

Each command module has ``add_parser(subparsers)`` (its flags; it imports nothing heavy) and ``run(args, env)``
(imports what it needs, returns the exit code). Every user mistake reaches the user as one line on stderr and a
non-zero exit: :class:`~monitor.cli.common.CliError`, :class:`~monitor.config.ConfigError` (one line per problem)
and a closed stdout are handled here, never shown as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping

from monitor.cli.common import CliError, Parser
from monitor.config import ConfigError

#: The commands in the order ``qmon --help`` lists them: name -> module of this package.
COMMANDS = {
    "run": "run", "demo": "demo", "check-config": "check_config", "replay": "replay", "record": "record",
    "report": "report", "import-queue-log": "import_queue_log", "db": "db", "optout": "optout",
}

Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``qmon`` parser with every subcommand (``qmon X --help`` prints ``usage: qmon X``); ``only``: a command
    name, whose subcommand alone is registered (what parsing ``qmon <only> ...`` needs: the same result)."""
    from monitor import __version__

    p = Parser(prog="qmon", description="Asterisk call-center quality monitor.",
               epilog="qmon COMMAND --help for the options of one command.")
    p.add_argument("--version", action="version", version=f"qmon {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue
        importlib.import_module(f"monitor.cli.{module}").add_parser(sub)
    return p


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``qmon`` console script: the exit code (0 ok, 1 failed, 2 usage/configuration)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if env is None else env)
    # ``qmon COMMAND ...``: only that command's parser is built (the other modules and their argparse set-up cost
    # ~6 ms of every run, of ~0.1 s of start-up); anything else (``--help``, a mistyped command) gets the full
    # parser, which lists them all.
    parser = build_parser(args_in[0] if args_in and args_in[0] in COMMANDS else None)
    prog = "qmon"
    try:
        try:
            args, extra = parser.parse_known_args(args_in)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        prog = f"qmon {args.command}"
        if extra:  # argparse leaves a subcommand's unknown flags to the top parser: name the subcommand
            raise CliError(f"unrecognized arguments: {' '.join(extra)} (see {prog} --help)")
        handler: Handler = args.func
        code = handler(args, environ)
        if argv is None and getattr(args, "exit_now", False) and sys.getprofile() is None and sys.gettrace() is None:
            # As the program (not called by tests), a one-shot command that leaves no thread, file or atexit work
            # behind exits without the interpreter's tear-down: freeing a replay's tracker, records and modules
            # one by one took ~12 ms, 3 % of a whole replay of the bench stream (mypy exits the same way). Not
            # under a profiler, tracer or coverage: they write their result once the program returns.
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:  # None: started with the descriptor closed (print wrote nothing)
                    stream.flush()  # a closed pipe raises here: handled below, as for the report's own print
            os._exit(code)
        return code
    except CliError as exc:
        print(f"{exc.prog or prog}: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{prog}: {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours. Silence the flush at exit, exit as SIGPIPE would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line (QMON_TRACEBACK=1 shows the traceback)
        if environ.get("QMON_TRACEBACK"):
            raise
        print(f"{prog}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
