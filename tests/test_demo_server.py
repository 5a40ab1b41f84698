"""The simulator over real TCP: banner, Login, events, Ping, QueueStatus, CoreShowChannels, Logoff; and qmon demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
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


def test_qmon_demo_serves_metrics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--duration", "8", "--speed", "20",
                             "--http-port", str(port), "--db", str(tmp_path / "demo.db"), "--seed", "3"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    body, counters = "", []
    try:
        deadline = time.monotonic() + 7.5
        while time.monotonic() < deadline and not counters:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                continue
            counters = [line for line in body.splitlines() if line.startswith(
                ("qmon_ami_events_total", "qmon_queue_calls_total")) and not line.endswith(" 0.0")]
        board: dict[str, object] = {}
        with contextlib.suppress(OSError):  # the wallboard works out of the box (no token on loopback)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/wallboard", timeout=2) as r:
                board = json.loads(r.read())
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert f"127.0.0.1:{port}/metrics" in out
    assert f"wallboard at http://127.0.0.1:{port}/," in out  # the demo prints the wallboard's URL
    assert board.get("ami_up") is True and board.get("queues"), board
    assert counters, body[:2000]
