"""``qmon record`` against the real TCP test AMI server: the capture replays to the same facts."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.replay import replay_files
from tests.support.amiserver import AmiTestServer
from tests.support.factcheck import FIXTURES, assert_facts, load_facts

SECRET = "rec-secret-never-printed"


def _strip(records: list) -> list:  # type: ignore[type-arg]
    return [(r.call_id, r.outcome, r.segments, r.transfers, r.survey and r.survey.score) for r in records]


@pytest.mark.parametrize("name", ["capture.ami", "capture.ami.gz"])
async def test_record_then_replay_gives_identical_facts(tmp_path: Path, name: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / name
    async with AmiTestServer.from_transcript("blind_transfer", secret=SECRET, mode="chunks", seed=2) as srv:
        argv = ["record", "--host", "127.0.0.1", "--port", str(srv.port), "--user", "qmon",
                "--secret-env", "AMI_PW", "--out", str(out), "--duration", "0.5"]
        assert await asyncio.to_thread(main, argv, {"AMI_PW": SECRET}) == 0
    assert [a["Action"] for a in srv.actions] == ["Login", "Logoff"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds caller numbers
    before = out.read_bytes()
    assert await asyncio.to_thread(main, argv, {"AMI_PW": SECRET}) == 2  # never overwritten without --force
    err = capsys.readouterr()
    assert out.read_bytes() == before and "pass --force" in err.err
    res = replay_files([out])
    assert res.skipped == {}
    assert_facts(res.records, load_facts("blind_transfer"))
    assert _strip(res.records) == _strip(replay_files([FIXTURES / "blind_transfer.ami"]).records)
    if name.endswith(".ami"):
        raw = out.read_bytes()
        assert raw.startswith(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: qmon-record-1\r\n")
        assert raw.endswith(b"Response: Goodbye\r\nActionID: qmon-record-2\r\n"
                            b"Message: Thanks for all the fish.\r\n\r\n")
        assert b"".join(srv.messages) in raw  # the events byte for byte
        assert SECRET.encode() not in raw
    assert SECRET not in err.out + err.err and "messages" in err.err


async def test_record_login_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.ami"
    secret_file = tmp_path / "secret"
    secret_file.write_text("wrong-secret\n")
    async with AmiTestServer(secret=SECRET) as srv:
        argv = ["record", "--port", str(srv.port), "--user", "bob", "--secret-file", str(secret_file),
                "--out", str(out), "--duration", "1"]
        assert await asyncio.to_thread(main, argv, {}) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "'bob'" in err and str(srv.port) in err and "wrong-secret" not in err
    assert not out.exists()


def test_record_needs_a_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--out", str(tmp_path / "x.ami")], {}) == 2
    assert "QMON_AMI_SECRET" in capsys.readouterr().err
    assert main(["record", "--out", str(tmp_path / "x.ami"), "--secret-file", str(tmp_path / "nope")], {}) == 2


def test_record_connection_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--port", "1", "--out", str(tmp_path / "x.ami"), "--duration", "0.1"],
                {"QMON_AMI_SECRET": "x"}) == 1
    assert "cannot connect to AMI 127.0.0.1:1" in capsys.readouterr().err
