"""Every user mistake: one line on stderr naming the problem, a non-zero exit, never a traceback, never a silent 0.

One table: each row runs ``python -m monitor ...`` as a subprocess, as a user would (all rows at once, in threads).
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
BUSY = "{busy}"  # replaced by a port the test holds open


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    code: int
    needle: str  # must be in the one stderr line
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "."  # relative to the work directory


NO_SURVEY = {"QMON_AMI_SECRET": "x", "QMON_SURVEY_ENABLED": "false"}
CASES = [
    # -- the daemon's host: ports, addresses, paths, exposure
    Case("run: HTTP port in use", ("run", "--http-port", BUSY), 2,
         "http: cannot listen on 127.0.0.1:{busy}: address already in use", NO_SURVEY),
    Case("demo: HTTP port in use", ("demo", "--http-port", BUSY), 2,
         "--http-port: cannot listen on 127.0.0.1:{busy}: address already in use"),
    Case("run: survey port in use", ("run", "--http-port", "0"), 2,
         "survey: cannot listen on 127.0.0.1:{busy}: address already in use",
         {"QMON_AMI_SECRET": "x", "QMON_SURVEY_PORT": BUSY}),
    Case("run: --http-bind to an address the host does not have", ("run", "--http-bind", "192.0.2.7"), 2,
         "http: cannot listen on 192.0.2.7:9465: not an address of this host", {**NO_SURVEY, "QMON_HTTP_TOKEN": "t"}),
    Case("run: public bind without a token", ("run", "--http-bind", "0.0.0.0"), 2,
         "http.bind 0.0.0.0 is reachable from other hosts and no token is set", NO_SURVEY),
    Case("demo: public bind without a token", ("demo", "--web.listen-address", "0.0.0.0:0"), 2,
         "no token is set"),
    Case("run: bad --web.listen-address", ("run", "--web.listen-address", "9465"), 2,
         "--web.listen-address: expected HOST:PORT, got '9465'", NO_SURVEY),
    Case("run: --web.listen-address and --http-port", ("run", "--web.listen-address", ":9100", "--http-port", "1"),
         2, "--web.listen-address sets the bind address and the port", NO_SURVEY),
    Case("run: SQLite file in a directory that does not exist", ("run", "--store-url", "nodir/q.db"), 2,
         "store.url: directory nodir does not exist", NO_SURVEY),
    Case("demo: SQLite file in a directory that does not exist", ("demo", "--db", "nodir/d.db"), 2,
         "does not exist"),
    Case("demo: --speed 0", ("demo", "--speed", "0"), 2, "--speed: must be > 0"),
    Case("demo: --speed nan", ("demo", "--speed", "nan"), 2, "--speed: must be > 0, got nan"),
    Case("demo: --duration -1", ("demo", "--duration", "-1"), 2, "--duration: must be seconds >= 0"),
    Case("demo: --duration inf", ("demo", "--duration", "inf"), 2, "--duration: must be seconds >= 0"),
    # -- a directory where a data file belongs: named, exit 2, nothing created (test_directories_create_nothing)
    Case("run: store.url is a directory", ("run",), 2, "store.url: adir is a directory",
         {**NO_SURVEY, "QMON_STORE_URL": "adir"}),
    Case("run: store.journal_path is a directory", ("run", "--store-url", "j.db"), 2,
         "store.journal_path: adir is a directory", {**NO_SURVEY, "QMON_STORE_JOURNAL_PATH": "adir"}),
    Case("run: survey.state_path is a directory", ("run", "--store-url", "sv.db", "--http-port", "0"), 2,
         "survey.state_path: adir is a directory", {"QMON_AMI_SECRET": "x", "QMON_SURVEY_STATE_PATH": "adir",
                                                    "QMON_STORE_JOURNAL_PATH": "sv.jsonl"}),
    Case("demo: --db is a directory", ("demo", "--db", "adir"), 2, "--db: "),
    Case("db upgrade: a directory", ("db", "upgrade", "--db", "adir"), 2, "store.url: adir is a directory"),
    Case("report: a directory", ("report", "--db", "adir"), 2, "store.url: adir is a directory, not a database"),
    Case("optout: state is a directory", ("optout", "list", "--state", "adir"), 2,
         "survey.state_path: adir is a directory"),
    Case("optout add: state is a directory", ("optout", "add", "123", "--state", "adir"), 2,
         "survey.state_path: adir is a directory"),
    # -- configuration
    Case("run: no AMI secret", ("run",), 2, "ami[default].secret: missing"),
    Case("run: missing config file", ("run", "--config", "missing.toml"), 2,
         "--config: cannot read missing.toml: No such file or directory"),
    Case("check-config: bad TOML", ("check-config", "--config", "bad.toml"), 2, "bad.toml is not valid TOML",
         {"QMON_AMI_SECRET": "x"}),
    Case("check-config: bad env value", ("check-config",), 2, "http.port: expected an integer, got string 'abc'",
         {"QMON_AMI_SECRET": "x", "QMON_HTTP_PORT": "abc"}),
    *[Case(f"check-config: empty {var}", (cmd,), 2, f"{key}: expected {kind}, got string ''",
           {"QMON_AMI_SECRET": "x", var: ""})
      for cmd, var, key, kind in [
          ("check-config", "QMON_HTTP_PORT", "http.port", "an integer"),
          ("run", "QMON_HTTP_PORT", "http.port", "an integer"),
          ("check-config", "QMON_TRACKER_ABANDON_SHORT_S", "tracker.abandon_short_s", "a number"),
          ("check-config", "QMON_SURVEY_PORT", "survey.port", "an integer"),
          ("check-config", "QMON_TRACKER_SL_THRESHOLD_S", "tracker.sl_threshold_s", "a number"),
          ("check-config", "QMON_STATUS_INTERVAL_S", "status_interval_s", "a number"),
          ("check-config", "QMON_AMI_PORT", "ami[default].port", "an integer"),
          ("check-config", "QMON_SURVEY_SAMPLING_RATE", "survey.sampling_rate", "a number"),
          ("check-config", "QMON_STORE_HASH_CALLERS", "store.hash_callers", "true or false"),
          ("check-config", "QMON_WALLBOARD_REFRESH_S", "wallboard.refresh_s", "a number"),
      ]],
    Case("check-config: nan", ("check-config",), 2, "tracker.abandon_short_s: expected a finite number",
         {"QMON_AMI_SECRET": "x", "QMON_TRACKER_ABANDON_SHORT_S": "nan"}),
    Case("check-config: whitespace token", ("check-config",), 2, "http.token: only whitespace",
         {"QMON_AMI_SECRET": "x", "QMON_HTTP_TOKEN": " "}),
    Case("check-config: PostgreSQL URL with a bad port", ("check-config",), 2,
         "store.url: bad port in 'h:notaport'", {"QMON_AMI_SECRET": "x", "QMON_STORE_URL": "postgresql://u:pw@h:notaport/db"}),
    Case("check-config: unknown top-level key lists [[ami]]", ("check-config", "--config", "bogus.toml"), 2,
         "bogus: unknown key (known: ami, http,", {"QMON_AMI_SECRET": "x"}),
    Case("run: empty bind without a token", ("run", "--http-bind", ""), 2,
         "http.bind '' (every address) is reachable", NO_SURVEY),
    Case("check-config: unknown env variable", ("check-config",), 2, "env QMON_HTTP_PROT: unknown setting",
         {"QMON_AMI_SECRET": "x", "QMON_HTTP_PROT": "1"}),
    Case("check-config: sl_threshold_s between histogram bounds", ("check-config", "--config", "sl25.toml"), 2,
         "tracker.sl_threshold_s: 25 is not a bound of the wait histogram", {"QMON_AMI_SECRET": "x"}),
    Case("unknown command", ("frobnicate",), 2, "invalid choice: 'frobnicate'"),
    Case("unknown flag", ("replay", "x.ami", "--bogus"), 2, "qmon replay: unrecognized arguments: --bogus"),
    # -- replay: never an empty report for a file that is not a capture
    Case("replay: random bytes", ("replay", "random.ami"), 1, "random.ami: no AMI event in it"),
    Case("replay: plain text", ("replay", "text.ami"), 1, "text.ami: no AMI event in it"),
    Case("replay: bad JSONL", ("replay", "bad.jsonl"), 1, "bad.jsonl: no AMI event in it"),
    Case("replay: missing file", ("replay", "missing.ami"), 2, "missing.ami: cannot open"),
    Case("replay: unknown format", ("replay", "notes.txt"), 2, "unknown capture format"),
    Case("replay: --abandon-short-s inf", ("replay", "abandoned.ami", "--abandon-short-s", "inf"), 2,
         "tracker.abandon_short_s: expected a finite number"),
    Case("replay: empty --trunk-prefix", ("replay", "abandoned.ami", "--trunk-prefix", ""), 2,
         "--trunk-prefix: empty value"),
    Case("replay: non-digit --trunk-prefix", ("replay", "abandoned.ami", "--trunk-prefix", "9x"), 2,
         "tracker.trunk_prefixes: '9x' is not a prefix (digits)"),
    Case("replay: --records with a table", ("replay", "abandoned.ami", "--records", "--report", "table"), 2,
         "--records: the call records are printed with --report json only"),
    Case("replay: SL threshold between bounds", ("replay", "abandoned.ami", "--sl-threshold-s", "25"), 2,
         "tracker.sl_threshold_s: 25 is not a bound"),
    # -- store commands: plain paths accepted; a read never creates a database
    Case("report: default database missing", ("report",), 1, "no database at qmon.db: nothing to read (qmon demo "
         "writes qmon-demo.db", cwd="empty"),
    Case("report: plain path missing", ("report", "--db", "nope.db"), 1, "no database at nope.db"),
    Case("report: in a directory that does not exist", ("report", "--db", "nodir/r.db"), 1,
         "no database at nodir/r.db"),
    Case("report: bad --from", ("report", "--from", "yesterday", "--db", "nope.db"), 2, "bad time 'yesterday'"),
    Case("report: --from before 1970", ("report", "--from", "1900-01-01", "--to", "2024-01-01", "--db", "nope.db"), 2,
         "--from: '1900-01-01' is out of range (1970 to 9999)"),
    Case("report: --to past 9999", ("report", "--from", "2024-01-01", "--to", "9999-12-31", "--db", "nope.db"), 2,
         "--to: '9999-12-31' is out of range (1970 to 9999)"),
    Case("report: --to 1e20", ("report", "--from", "0", "--to", "1e20", "--db", "nope.db"), 2,
         "--to: '1e20' is out of range"),
    Case("report: --to nan", ("report", "--to", "nan", "--db", "nope.db"), 2, "--to: 'nan' is out of range"),
    Case("report: --from -5", ("report", "--from", "-5", "--db", "nope.db"), 2, "--from: '-5' is out of range"),
    Case("report: bad --tz", ("report", "--tz", "Mars/Olympus"), 2, "--tz: unknown time zone 'Mars/Olympus'"),
    Case("report: a file that is not a database", ("report", "--db", "bad.toml"), 1,
         "bad.toml: not a qmon database (not an SQLite file)"),
    Case("report: a 0-byte file", ("report", "--db", "zero.db"), 1, "zero.db: not a qmon database (empty file)"),
    Case("db current: a 0-byte file", ("db", "current", "--db", "zero2.db"), 1,
         "zero2.db: not a qmon database (empty file)"),
    Case("db current: plain path missing", ("db", "current", "--db", "nope.db"), 1, "no database at nope.db"),
    Case("db prune: no retention", ("db", "prune", "--db", "nope.db"), 2, "--older-than DAYS (> 0) is required"),
    Case("db upgrade: directory missing", ("db", "upgrade", "--db", "nodir/x.db"), 2,
         "store.url: directory nodir does not exist"),
    Case("db: no action", ("db",), 2, "qmon db: the following arguments are required: ACTION"),
    Case("import-queue-log: an .ami capture", ("import-queue-log", "abandoned.ami", "--db", "ql.db"), 1,
         "abandoned.ami: not a queue_log: none of its"),
    Case("import-queue-log: missing file", ("import-queue-log", "missing.queue_log", "--db", "ql.db"), 2,
         "no such file: missing.queue_log"),
    Case("import-queue-log: empty file", ("import-queue-log", "empty.queue_log", "--db", "ql.db"), 1,
         "empty.queue_log: empty: nothing to import"),
    Case("import-queue-log: empty --pbx", ("import-queue-log", "abandoned.ami", "--pbx", "", "--db", "ql.db"), 2,
         "argument --pbx: '' is not a PBX name"),
    Case("import-queue-log: a directory", ("import-queue-log", "adir", "--db", "ql.db"), 2,
         "adir: is a directory, not a queue_log file"),
    Case("report: empty --pbx", ("report", "--pbx", "", "--db", "nope.db"), 2, "argument --pbx: '' is not a PBX name"),
    Case("record: empty --pbx", ("record", "--pbx", "", "--out", "x.ami"), 2, "argument --pbx: '' is not a PBX name",
         {"QMON_AMI_SECRET": "x"}),
    # -- the small commands
    Case("record: no secret", ("record", "--out", "x.ami"), 2, "ami[default].secret: missing"),
    Case("record: --out in a missing directory", ("record", "--out", "nodir/x.ami"), 2,
         "--out: directory nodir does not exist", {"QMON_AMI_SECRET": "x"}),
    Case("record: --out with a name replay refuses", ("record", "--out", "c.txt"), 2,
         "--out: 'c.txt': a capture is written as .ami or .ami.gz", {"QMON_AMI_SECRET": "x"}),
    Case("record: --out exists", ("record", "--out", "abandoned.ami"), 2,
         "--out: abandoned.ami exists: pass --force", {"QMON_AMI_SECRET": "x"}),
    Case("record: --duration -1", ("record", "--out", "r.ami", "--duration", "-1"), 2,
         "--duration: must be a number of seconds > 0, got -1", {"QMON_AMI_SECRET": "x"}),
    Case("record: --duration nan", ("record", "--out", "r.ami", "--duration", "nan"), 2,
         "--duration: must be a number of seconds > 0, got nan", {"QMON_AMI_SECRET": "x"}),
    Case("optout: no number", ("optout", "add", "--state", "s.db"), 2, "add: a NUMBER is required"),
    Case("optout: a 100000-digit number", ("optout", "add", "1" * 100_000, "--state", "big.db"), 2,
         "not a phone number: '1111111111111111111111111111111111111111...' (over 20 digits)"),
    Case("optout: not a number", ("optout", "add", "anonymous", "--state", "s.db"), 2,
         "not a phone number: 'anonymous'"),
]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMON_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def _run(case: Case, work: Path, busy: int) -> subprocess.CompletedProcess[str]:
    def sub(s: str) -> str:
        return s.replace(BUSY, str(busy))

    return subprocess.run([sys.executable, "-m", "monitor", *map(sub, case.argv)], cwd=work / case.cwd,
                          env=_env({k: sub(v) for k, v in case.env.items()}), capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "empty").mkdir()
    (d / "adir").mkdir()
    (d / "zero.db").write_bytes(b"")
    (d / "zero2.db").write_bytes(b"")
    (d / "random.ami").write_bytes(bytes(range(256)) * 16)
    (d / "text.ami").write_text("Dear diary,\nno events today.\n")
    (d / "bad.jsonl").write_text('{"Event": \nnot json at all\n')
    (d / "notes.txt").write_text("x\n")
    (d / "bad.toml").write_text("[http\nport = 1\n")
    (d / "bogus.toml").write_text("bogus = 1\n")
    (d / "sl25.toml").write_text("[tracker]\nsl_threshold_s = 25\n")
    (d / "empty.queue_log").write_text("")
    shutil.copy(FIXTURES / "abandoned.ami", d / "abandoned.ami")
    return d


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def results(work: Path, busy_port: int) -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {c.name: pool.submit(_run, c, work, busy_port) for c in CASES}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_mistake_gets_one_line_and_a_non_zero_exit(case: Case, results: dict[str, subprocess.CompletedProcess[str]],
                                                     busy_port: int) -> None:
    r = results[case.name]
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert case.needle.replace(BUSY, str(busy_port)) in lines[0]
    assert lines[0].startswith("qmon")
    assert r.returncode == case.code, r.stderr


def test_read_commands_create_nothing(work: Path, results: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """``qmon report`` and ``qmon db current`` on a missing database leave no file (nor directory) behind."""
    assert results and list((work / "empty").iterdir()) == []
    assert not (work / "big.db").exists() and not (work / "s.db").exists()  # optout: no number, no state file
    assert not (work / "nope.db").exists() and not (work / "nodir").exists() and not (work / "ql.db").exists()
    assert (work / "zero.db").stat().st_size == 0 and (work / "zero2.db").stat().st_size == 0  # read, not converted


def test_directories_create_nothing(work: Path, results: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """A directory given as a data path is refused before anything is written (no database, journal, state)."""
    assert results and list((work / "adir").iterdir()) == []
    assert [p.name for p in work.iterdir() if p.name.startswith(("adir.", "adir-", "j.", "sv."))] == []


@pytest.mark.parametrize("command", ["run", "demo", "check-config", "replay", "record", "report",
                                     "import-queue-log", "db", "optout"])
def test_help_names_the_command(command: str) -> None:
    r = subprocess.run([sys.executable, "-m", "monitor", command, "--help"], capture_output=True, text=True,
                       env=_env({}), timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: qmon {command} ")


def test_every_empty_number_is_reported_at_once(tmp_path: Path) -> None:
    """Several numeric settings set to "" in the environment: one line each, exit 2, no TypeError."""
    env = {"QMON_AMI_SECRET": "x", "QMON_HTTP_PORT": "", "QMON_SURVEY_PORT": "", "QMON_AMI_PORT": ""}
    r = subprocess.run([sys.executable, "-m", "monitor", "run"], capture_output=True, text=True, env=_env(env),
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "unexpected" not in r.stderr
    assert sorted(r.stderr.splitlines()) == [f"qmon run: {k}: expected an integer, got string ''"
                                             for k in ("ami[default].port", "http.port", "survey.port")]


def test_output_piped_to_head(tmp_path: Path) -> None:
    """The reader closing the pipe early (``| head``) is not an error of ours: no traceback, SIGPIPE's status."""
    files = [str(p) for p in sorted(FIXTURES.glob("*.ami"))]
    p = subprocess.Popen([sys.executable, "-m", "monitor", "replay", *files, "--records"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env({}), cwd=tmp_path)
    assert p.stdout is not None and p.stderr is not None
    # Closed before the child (still importing) writes anything: its output (30 kB) would fit in the pipe's buffer.
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_gzipped_queue_log_is_read(tmp_path: Path) -> None:
    """What logrotate leaves (queue_log.1.gz) imports like the plain file."""
    gz = tmp_path / "queue_log.1.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "abandoned.queue_log").read_bytes()))
    r = subprocess.run([sys.executable, "-m", "monitor", "import-queue-log", str(gz), "--db", "ql.db"],
                       capture_output=True, text=True, env=_env({}), cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "calls 1, imported 1" in r.stdout and "bad_lines 0" in r.stdout
