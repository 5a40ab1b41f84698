"""What the command modules share: the parser that fails in one line, settings from ``--config``, pre-flight checks.

Every user mistake becomes a :class:`CliError` (or a :class:`~monitor.config.ConfigError`): the dispatcher prints
one line per problem and exits non-zero. This module imports nothing heavy (the commands import their adapters
lazily, so ``qmon X --help`` and a bad flag answer at once).
"""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import NoReturn

from monitor.config import ConfigError, load_settings, sqlite_path
from monitor.settings import Settings


class CliError(Exception):
    """A user mistake or an unusable environment: ``message`` is printed as one line, ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 2, prog: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.prog = prog  # the (sub)command it is about, when the dispatcher cannot know it yet


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the dispatcher prints it) instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage block and exiting."""
        raise CliError(f"{message} (see {self.prog} --help)", prog=self.prog)


def one_line(exc: BaseException) -> str:
    """An exception as one short line: the driver's own error (not SQLAlchemy's wrapper and its "Background" link)."""
    inner = getattr(exc, "orig", None) or exc
    text = (str(inner).strip().splitlines() or [""])[0][:200]
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


def add_config_arg(p: argparse.ArgumentParser) -> None:
    """``--config FILE`` (default ``$QMON_CONFIG``)."""
    p.add_argument("--config", "-c", metavar="FILE", help="TOML config file (default: $QMON_CONFIG)")


def read_text(path: str) -> str:
    """A file's text (UTF-8); OSError/UnicodeDecodeError as they come (``load_settings`` reports them)."""
    return Path(path).read_text(encoding="utf-8")


def settings_from(config: str | None, env: Mapping[str, str], needs: Collection[str],
                  flags: Mapping[str, str | None] | None = None) -> Settings:
    """Settings for a command: reads the config file (``config`` or ``$QMON_CONFIG``), then ``load_settings``.

    ``flags`` maps dotted keys to the text given on the command line (None = not given). ConfigError on any
    problem (a missing or unreadable file is one).
    """
    source = config or env.get("QMON_CONFIG") or None
    text: str | None = None
    if source is not None:
        try:
            text = read_text(source)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"--config: cannot read {source}: {getattr(exc, 'strerror', None) or exc}"]) from None
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    return load_settings(env, text, source=source, flags=given, needs=needs, read_file=read_text)


def add_settings_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``qmon run`` and ``qmon check-config`` share (they override the file and the environment)."""
    add_config_arg(p)
    p.add_argument("--http-bind", metavar="ADDR", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--http-port", metavar="PORT", help="HTTP port (0 = any free port)")
    p.add_argument("--web.listen-address", dest="listen_address", metavar="HOST:PORT",
                   help="--http-bind and --http-port in one (the Prometheus exporters' flag)")
    p.add_argument("--store-url", metavar="URL|FILE", help="database URL or SQLite file; prefer QMON_STORE_URL "
                   "or store.url_file when it holds a password")
    p.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")


def settings_flags(args: argparse.Namespace) -> dict[str, str | None]:
    """The dotted settings keys the flags of :func:`add_settings_flags` set."""
    bind, port = args.http_bind, args.http_port
    if args.listen_address is not None:
        if bind is not None or port is not None:
            raise CliError("--web.listen-address sets the bind address and the port: drop --http-bind/--http-port")
        bind, port = split_listen_address(args.listen_address)
    return {"http.bind": bind, "http.port": port, "store.url": args.store_url, "log_level": args.log_level}


def pbx_name(text: str) -> str:
    """argparse type of ``--pbx``: a PBX name as ``[[ami]] name`` allows (never empty: it keys stored calls)."""
    from monitor.config import NAME_RE

    if not NAME_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a PBX name (letters, digits, _.-; up to 63; not empty)")
    return text


def add_db_args(p: argparse.ArgumentParser) -> None:
    """``--db URL|FILE`` and ``--config FILE``: what every store command takes."""
    p.add_argument("--db", metavar="URL|FILE", help="database URL or SQLite file (default: [store] url of the "
                   "config, else $QMON_STORE_URL, else qmon.db)")
    add_config_arg(p)


def store_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Settings of a store command: only ``[store]`` (no AMI secret needed); ``--db`` wins."""
    return settings_from(args.config, env, {"store"}, {"store.url": args.db})


def require_database(url: str) -> None:
    """For read commands: an SQLite file must already exist and be one (a read must never create a database)."""
    path = sqlite_path(url)
    if path is not None and Path(path).expanduser().is_dir():
        raise CliError(f"store.url: {path} is a directory, not a database")
    if path is not None and not Path(path).expanduser().is_file():
        hint = " (qmon demo writes qmon-demo.db: --db qmon-demo.db)" if Path(path).name == "qmon.db" else ""
        raise CliError(f"no database at {path}: nothing to read{hint}", 1)
    if path is not None:
        # Opening anything else with SQLite would turn it into a database (a 0-byte file becomes 4 kB): look first.
        try:
            with Path(path).expanduser().open("rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise CliError(f"{path}: cannot read: {exc.strerror}", 1) from None
        if header != b"SQLite format 3\x00":
            raise CliError(f"{path}: not a qmon database ({'empty file' if not header else 'not an SQLite file'})", 1)


def check_writable_file(path: str, what: str) -> None:
    """A file we will create or append to: its directory must exist and be writable (one clear line if not)."""
    p = Path(path).expanduser()
    if p.is_dir() or (path.endswith(("/", os.sep)) and not p.exists()):
        raise CliError(f"{what}: {path} is a directory" if p.is_dir() else f"{what}: {path} names a directory")
    parent = p.parent
    if not parent.is_dir():
        state = "is not a directory" if parent.exists() else "does not exist"
        raise CliError(f"{what}: directory {parent} {state} (for {p})")
    if p.exists() and not os.access(p, os.W_OK):
        raise CliError(f"{what}: {p} is not writable")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"{what}: directory {parent} is not writable (for {p})")


def check_store_paths(s: Settings, url_what: str = "store.url") -> None:
    """The SQLite file and the journal of a command that writes: files (not directories) we may create or write."""
    path = sqlite_path(s.store.url)
    if path is not None:
        check_writable_file(path, url_what)
    check_writable_file(s.store.journal_path, "store.journal_path")


def check_listen(bind: str, port: int, what: str) -> None:
    """Can we listen on bind:port? One clear line naming the setting if not (in use, not an address of this host).

    A pre-flight check (the server binds again right after): it turns the daemon's bind traceback into a message.
    """
    import socket  # here: every command imports this module, and `qmon replay`'s start-up is measured (issue 15)

    try:
        infos = socket.getaddrinfo(bind or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"{what}: cannot resolve {bind!r}: {exc.strerror}") from None
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's create_server does
            try:
                sock.bind(addr)
            except OSError as exc:
                why = {errno.EADDRINUSE: "address already in use (another qmon, or another exporter?)",
                       errno.EADDRNOTAVAIL: "not an address of this host",
                       errno.EACCES: "permission denied (ports below 1024 need privileges)"}.get(
                    exc.errno or 0, exc.strerror or str(exc))
                raise CliError(f"{what}: cannot listen on {bind}:{port}: {why}") from None


def is_loopback(bind: str) -> bool:
    """Whether a bind address only serves this host (``localhost``, 127.0.0.0/8, ::1)."""
    import ipaddress  # here, as socket above

    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(bind: str, token: str, insecure: bool, prog: str) -> None:
    """The API serves caller numbers: refuse a non-loopback bind without a token unless told otherwise."""
    if not token and not insecure and not is_loopback(bind):
        shown = bind or "'' (every address)"
        raise CliError(f"http.bind {shown} is reachable from other hosts and no token is set: set QMON_HTTP_TOKEN "
                       f"(or http.token_file), or bind 127.0.0.1, or pass {prog} --insecure-no-token")


def split_listen_address(text: str) -> tuple[str, str]:
    """``HOST:PORT`` / ``[V6]:PORT`` / ``:PORT`` (Prometheus exporters' ``--web.listen-address``) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise CliError(f"--web.listen-address: expected HOST:PORT, got {text!r}")
    return (host.strip("[]") or "0.0.0.0"), port
