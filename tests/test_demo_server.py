"""The simulator over real TCP: banner, Login, events, Ping, QueueStatus, CoreShowChannels, Logoff; and qmon demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from monitor.ami.wire import Headers, WireParser, encode
from monitor.sim.scenario import Simulation
from monitor.sim.server import AmiSimServer
from tests.support.helpers import free_port


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.parser = reader, writer, WireParser()
        self.pending: list[Headers] = []

    async def read_until(self, pred, wait_s: float = 5.0) -> list[Headers]:  # type: ignore[no-untyped-def]
        got: list[Headers] = []
        deadline = time.monotonic() + wait_s
        while True:
            while self.pending:
                m = self.pending.pop(0)
                got.append(m)
                if pred(m):
                    return got
            data = await asyncio.wait_for(self.reader.read(65536), max(0.01, deadline - time.monotonic()))
            assert data, "server closed the connection"
            self.pending.extend(self.parser.feed(data))


async def _connect(port: int) -> _Conn:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    return _Conn(r, w)


def test_ami_conversation() -> None:
    async def main() -> None:
        server = AmiSimServer(Simulation(4, time.time()), speed=40.0, username="u", secret="s")
        port = await server.start()
        pacer = asyncio.create_task(server.run())
        try:
            bad = await _connect(port)
            bad.writer.write(encode({"Action": "Login", "Username": "u", "Secret": "wrong", "ActionID": "x"}))
            msgs = await bad.read_until(lambda m: "Response" in m)
            assert msgs[-1]["Response"] == "Error" and bad.parser.banner == "Asterisk Call Manager/11.0.0"
            c = await _connect(port)
            c.writer.write(encode({"Action": "Login", "Username": "u", "Secret": "s", "ActionID": "1"}))
            msgs = await c.read_until(lambda m: m.get("Event") == "FullyBooted")
            assert msgs[0] == {"Response": "Success", "ActionID": "1", "Message": "Authentication accepted"}
            msgs = await c.read_until(lambda m: m.get("Event") == "QueueCallerJoin", wait_s=10)
            assert all("Timestamp" in m and m["Privilege"].endswith(",all") for m in msgs)
            c.writer.write(encode({"Action": "Ping", "ActionID": "p"}))
            await c.read_until(lambda m: m.get("ActionID") == "p" and m.get("Ping") == "Pong")
            c.writer.write(encode({"Action": "QueueStatus", "ActionID": "qs"}))
            msgs = await c.read_until(lambda m: m.get("Event") == "QueueStatusComplete")
            mine = [m for m in msgs if m.get("ActionID") == "qs"]
            assert mine[0]["EventList"] == "start" and int(mine[-1]["ListItems"]) == len(mine) - 2
            kinds = {m.get("Event") for m in mine}
            assert {"QueueParams", "QueueMember"} <= kinds
            assert all("Timestamp" not in m for m in mine)
            c.writer.write(encode({"Action": "CoreShowChannels", "ActionID": "cs"}))
            msgs = await c.read_until(lambda m: m.get("Event") == "CoreShowChannelsComplete")
            assert any(m.get("Event") == "CoreShowChannel" and m.get("ActionID") == "cs" for m in msgs)
            c.writer.write(encode({"Action": "Logoff", "ActionID": "bye"}))
            msgs = await c.read_until(lambda m: m.get("Response") == "Goodbye")
            assert msgs[-1]["Message"] == "Thanks for all the fish."
        finally:
            pacer.cancel()
            await server.close()

    asyncio.run(main())


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_qmon_demo_serves_metrics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The command as a user runs it: QMON_HTTP_TOKEN from the environment guards the API, the URLs are printed."""
    port, token = free_port(), "tok-from-env"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "QMON_HTTP_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--duration", "8", "--speed", "20",
                             "--http-port", str(port), "--db", str(tmp_path / "demo.db"), "--seed", "3"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    body, counters, surveys, anonymous = "", [], (0, ""), 0
    try:
        deadline = time.monotonic() + 7.5
        while time.monotonic() < deadline and not (counters and surveys[0] == 200):
            time.sleep(0.5)
            try:
                anonymous = _get(f"http://127.0.0.1:{port}/api/v1/surveys")[0]
                surveys = _get(f"http://127.0.0.1:{port}/api/v1/surveys", token)
                body = _get(f"http://127.0.0.1:{port}/metrics", token)[1]
            except OSError:
                continue
            counters = [line for line in body.splitlines() if line.startswith(
                ("qmon_ami_events_total", "qmon_queue_calls_total")) and not line.endswith(" 0.0")]
        board: dict[str, object] = {}
        with contextlib.suppress(OSError):  # the wallboard's data, behind the same token as the API
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/wallboard",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=2) as r:
                board = json.loads(r.read())
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    for path in ("/", "/metrics", "/api/v1/queues", "/api/v1/calls", "/api/v1/surveys"):
        assert f"http://127.0.0.1:{port}{path} " in out or out.count(f"http://127.0.0.1:{port}{path}\n"), (path, out)
    assert "agi://127.0.0.1:" in out and "Authorization: Bearer" in out and token not in out
    assert board.get("ami_up") is True and board.get("queues"), board
    assert counters, body[:2000]
    assert anonymous == 401 and surveys[0] == 200, (anonymous, surveys)
    assert (tmp_path / "demo-survey.db").is_file()  # the survey's state beside the demo database
