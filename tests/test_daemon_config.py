"""Configuration: TOML + QMON_* env + flags, every problem reported at once, secrets masked, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.cli.common import settings_from
from monitor.config import ConfigError, load_settings, mask_url, tracker_config

ROOT = Path(__file__).parent.parent


def load(argv: list[str], env: dict[str, str]) -> object:
    """Settings as ``qmon run`` loads them: ``--config FILE`` and ``--http-port N`` here."""
    flags = dict(zip(argv[::2], argv[1::2], strict=True))
    return settings_from(flags.get("--config"), env, {"ami", "tracker", "http", "store", "survey"},
                         {"http.port": flags.get("--http-port")})


def problems(argv: list[str], env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(argv, env)
    return exc.value.problems


def cmd_check_config(argv: list[str], env: dict[str, str]) -> int:
    return main(["check-config", *argv], env)


def write(tmp: Path, text: str) -> str:
    p = tmp / "qmon.toml"
    p.write_text(text)
    return str(p)


def test_defaults_and_precedence(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[http]\nport = 9000\nbind = "0.0.0.0"\n[tracker]\nqueues = ["support"]\n')
    s: Any = load(["--config", cfg, "--http-port", "9100"],
                      {"QMON_AMI_SECRET": "s3", "QMON_HTTP_PORT": "9050", "QMON_TRACKER_ABANDON_SHORT_S": "3"})
    assert s.http.port == 9100 and s.http.bind == "0.0.0.0"  # flag > env > file
    assert s.tracker.queues == ("support",) and s.tracker.abandon_short_s == 3.0
    assert s.ami[0].secret == "s3" and s.ami[0].name == "default"


def test_several_ami_with_named_secrets(tmp_path: Path) -> None:
    (tmp_path / "pbx2.secret").write_text("from-file\n")
    cfg = write(tmp_path, '[[ami]]\nname = "pbx-1"\nhost = "10.0.0.1"\n'
                f'[[ami]]\nname = "pbx2"\nsecret_file = "{tmp_path / "pbx2.secret"}"\n')
    s: Any = load(["--config", cfg], {"QMON_AMI_PBX_1_SECRET": "one", "QMON_AMI_PORT": "5039"})
    assert [(a.name, a.secret, a.port) for a in s.ami] == [("pbx-1", "one", 5039), ("pbx2", "from-file", 5039)]


def test_every_problem_at_once(tmp_path: Path) -> None:
    cfg = write(tmp_path, """
bogus_top = 1
[[ami]]
name = "a"
port = "5038"
hots = "x"
[[ami]]
name = "b"
secret_file = "/nonexistent/qmon-secret"
[http]
token = "plain"
port = 70000
[store]
url = "postgresql+asyncpg://qmon:hunter2@db/qmon"
[tracker]
queues = ["support", 3]
repeat_windows = ["forever"]
queue_sl_definition = ["sales=sl9"]
queue_wrapup_s = ["support=soon"]
owed_horizon_s = 0
""")
    got = problems(["--config", cfg], {"QMON_HTTP_BIND": "127.0.0.1", "QMON_TRACKER_SL_THRESHOLD_S": "soon",
                                       "QMON_STORE_BATCH_SIZ": "5"})
    text = "\n".join(got)
    for expected in (
        "bogus_top: unknown key",
        "ami[a].port: expected an integer, got string '5038'",
        "ami[a].hots: unknown key",
        "ami[a].secret: missing: set QMON_AMI_SECRET",
        "ami[b].secret: cannot read /nonexistent/qmon-secret: No such file or directory",
        "http.token: secrets are not read from the config file: set QMON_HTTP_TOKEN or token_file",
        "http.port: 70000 is not a TCP port",
        "store.url: holds a password",
        "tracker.queues: expected a list of strings",
        "tracker.repeat_windows: bad window 'forever'",
        "tracker.queue_sl_definition: sales='sl9' is not a service-level definition",
        "tracker.queue_wrapup_s: 'support=soon' is not queue=seconds",
        "tracker.owed_horizon_s: must be > 0",
        "tracker.sl_threshold_s: expected a number, got string 'soon'",
        "env QMON_STORE_BATCH_SIZ: unknown setting",
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert "hunter2" not in text


def test_unreadable_and_invalid_config_file(tmp_path: Path) -> None:
    assert problems(["--config", str(tmp_path / "missing.toml")], {"QMON_AMI_SECRET": "x"}) == [
        f"--config: cannot read {tmp_path / 'missing.toml'}: No such file or directory"]
    bad = write(tmp_path, "[http\nport = 1\n")
    assert problems(["--config", bad], {"QMON_AMI_SECRET": "x"})[0].startswith(f"--config: {bad} is not valid TOML")


def test_check_config_masks_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"QMON_AMI_SECRET": "ami-s3cret", "QMON_HTTP_TOKEN": "tok-s3cret",
           "QMON_STORE_URL": "postgresql+asyncpg://qmon:db-s3cret@db:5432/qmon"}
    assert cmd_check_config([], env) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert 'url = "postgresql+asyncpg://qmon:***@db:5432/qmon"' in out and 'secret = "***"' in out
    assert mask_url("sqlite+aiosqlite:///qmon.db") == "sqlite+aiosqlite:///qmon.db"


def test_example_config_is_valid(tmp_path: Path) -> None:
    (tmp_path / "ami").write_text("x")
    text = (ROOT / "qmon.example.toml").read_text().replace("/run/secrets/qmon-ami", str(tmp_path / "ami"))
    s: Any = load(["--config", write(tmp_path, text)], {})
    assert s.ami[0].name == "pbx1" and s.tracker.queues == ("support", "sales")


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_cli_exit_2_with_messages(tmp_path: Path, command: str) -> None:
    cfg = write(tmp_path, '[http]\nport = "x"\nunknown = 1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMON_")}
    r = subprocess.run([sys.executable, "-m", "monitor", command, "--config", cfg], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 2
    assert "http.port: expected an integer, got string 'x'" in r.stderr
    assert "http.unknown: unknown key" in r.stderr
    assert "ami[default].secret: missing" in r.stderr


def test_the_loader_is_pure_and_each_command_takes_only_its_sections() -> None:
    """TOML text + env in, no file system: the store commands need no AMI secret and read no other secret file."""
    asked: list[str] = []

    def reader(path: str) -> str:
        asked.append(path)
        if path != "/s/ami":
            raise FileNotFoundError(2, "No such file or directory")
        return "from-file\n"

    text = '[[ami]]\nsecret_file = "/s/ami"\n[store]\nurl = "calls.db"\n[http]\ntoken_file = "/s/none"\n'
    s = load_settings({}, text, needs={"store"}, read_file=reader)
    assert s.store.url == "sqlite+aiosqlite:///calls.db"  # a plain path is an SQLite file, as everywhere
    assert s.ami[0].secret == "" and asked == []  # neither secret file was read: the command needs neither
    with pytest.raises(ConfigError) as exc:
        load_settings({}, text, read_file=reader)  # `qmon run` needs every section
    assert asked == ["/s/ami", "/s/none"]
    assert exc.value.problems == ["http.token: cannot read /s/none: No such file or directory"]
    with pytest.raises(ConfigError) as exc:
        load_settings({}, "[store]\nurl = 'x.db'\n")
    assert exc.value.problems == [
        "ami[default].secret: missing: set QMON_AMI_SECRET (or QMON_AMI_DEFAULT_SECRET) or secret_file"]


def test_tracker_config_comes_from_the_settings_in_one_place() -> None:
    s = load_settings({"QMON_TRACKER_ABANDON_SHORT_S": "3", "QMON_TRACKER_REPEAT_WINDOWS": "48h,7d"},
                      needs={"tracker"})
    c = tracker_config(s.tracker, "pbx1")
    assert (c.abandon_short_s, c.repeat_windows, c.repeat_max_entries, c.pbx) == (3.0, ("48h", "7d"), 500_000,
                                                                                   "pbx1")
    s = load_settings({"QMON_TRACKER_LATE_GRACE_S": "0.5", "QMON_TRACKER_HOME_REGION": "PL",
                       "QMON_TRACKER_TRUNK_PREFIXES": "9,0", "QMON_TRACKER_WITHHELD_NUMBERS": "blocked"},
                      needs={"tracker"})
    c = tracker_config(s.tracker)
    assert (c.late_grace_s, c.home_region, c.trunk_prefixes, c.withheld_numbers) == (0.5, "PL", ("9", "0"),
                                                                                      ("blocked",))


def test_the_service_level_threshold_must_be_a_histogram_bound() -> None:
    """The service level is read from the wait histogram's ``le`` buckets: 25 s has no bucket."""
    with pytest.raises(ConfigError) as exc:
        load_settings({"QMON_TRACKER_SL_THRESHOLD_S": "25"}, needs={"tracker"})
    assert exc.value.problems[0].startswith("tracker.sl_threshold_s: 25 is not a bound of the wait histogram")
    assert load_settings({"QMON_TRACKER_SL_THRESHOLD_S": "30"}, needs={"tracker"}).tracker.sl_threshold_s == 30.0


def test_tracker_field_settings_from_file_and_env(tmp_path: Path) -> None:
    """Caller-number and late-event settings (issue 11): TOML keys and QMON_TRACKER_* like every other."""
    cfg = write(tmp_path, '[tracker]\nhome_region = "PL"\ntrunk_prefixes = ["9"]\nwithheld_numbers = ["blocked"]\n')
    s: Any = load(["--config", cfg], {"QMON_AMI_SECRET": "s", "QMON_TRACKER_LATE_GRACE_S": "3.5"})
    t = s.tracker
    assert (t.home_region, t.trunk_prefixes, t.withheld_numbers, t.late_grace_s) == ("PL", ("9",), ("blocked",), 3.5)
    bad = write(tmp_path, '[tracker]\nhome_region = "XX"\nlate_grace_s = -1\n')
    got = problems(["--config", bad], {"QMON_AMI_SECRET": "s"})
    assert any(p.startswith("tracker.home_region:") for p in got) and "tracker.late_grace_s: must be >= 0" in got
