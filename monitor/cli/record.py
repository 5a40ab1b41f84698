"""``qmon record --out FILE``: save a live AMI stream as an ``.ami`` capture (for a support case / a test)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.cli.common import CliError, add_config_arg, check_writable_file, pbx_name, settings_from


def add_parser(sub: Any) -> None:
    """Register ``qmon record``."""
    p = sub.add_parser("record", help="save a live AMI stream as an .ami capture",
                       description="Save a live AMI stream as an .ami capture (the bytes received; the secret "
                       "is sent, never stored). Connection settings: the [[ami]] of --config, QMON_AMI_*, flags.")
    p.add_argument("--host", help="AMI host (default 127.0.0.1)")
    p.add_argument("--port", help="AMI port (default 5038)")
    p.add_argument("--user", help="AMI username (manager.conf; default qmon)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--secret-env", metavar="VAR", help="environment variable holding the secret "
                   "(default QMON_AMI_SECRET)")
    g.add_argument("--secret-file", metavar="F", help="file holding the secret")
    p.add_argument("--pbx", metavar="NAME", type=pbx_name, help="which [[ami]] of --config (default: the first)")
    p.add_argument("--out", required=True, help="capture file to write (.ami, or .ami.gz to compress)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds "
                                                                              "(default: until Ctrl-C/SIGTERM)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="connect/login timeout")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    add_config_arg(p)
    p.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    """The flags alone: a name ``qmon replay`` reads, no silent overwrite, positive finite durations."""
    if not args.out.endswith((".ami", ".ami.gz")):
        raise CliError(f"--out: {args.out!r}: a capture is written as .ami or .ami.gz (what qmon replay reads)")
    for flag, value in (("--duration", args.duration), ("--timeout", args.timeout)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise CliError(f"{flag}: must be a number of seconds > 0, got {value:g}")
    check_writable_file(args.out, "--out")
    if Path(args.out).exists() and not args.force:
        raise CliError(f"--out: {args.out} exists: pass --force to overwrite it")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Connect, log in, write until ``--duration`` or a signal; exit 1 when AMI refuses or cannot be reached."""
    import asyncio

    from monitor.ami.recorder import RecordError, record
    from monitor.files import FILE_MODE, private_file

    check_args(args)

    secret: str | None = None
    if args.secret_env:
        if args.secret_env not in env:
            raise CliError(f"no AMI secret: {args.secret_env} is not set")
        secret = env[args.secret_env]
    s = settings_from(args.config, env, {"ami"}, {
        "ami.host": args.host, "ami.port": args.port, "ami.username": args.user, "ami.secret": secret,
        "ami.secret_file": args.secret_file})
    ami = next((a for a in s.ami if a.name == args.pbx), None) if args.pbx else s.ami[0]
    if ami is None:
        raise CliError(f"--pbx: no [[ami]] named {args.pbx!r} (known: {', '.join(a.name for a in s.ami)})")
    # Caller numbers: the capture is 0600 (created so before the recorder opens it; an old one is tightened).
    created = private_file(args.out)
    os.chmod(args.out, FILE_MODE)

    async def main() -> tuple[int, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)  # only possible in the main thread
        return await record(ami.host, ami.port, ami.username, ami.secret, Path(args.out), args.duration,
                            args.timeout, stop)

    try:
        messages, size = asyncio.run(main())
    except RecordError as exc:
        if created:  # nothing recorded: leave no empty capture behind
            Path(args.out).unlink(missing_ok=True)
        raise CliError(str(exc), 1) from None
    print(f"qmon record: {messages} messages, {size} bytes written to {args.out}", file=sys.stderr)
    return 0
