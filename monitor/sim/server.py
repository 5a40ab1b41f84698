"""A local AMI server that speaks for the simulated call center, paced in real time with a speed factor."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress

from monitor.ami.wire import WireParser, encode, first
from monitor.sim.agi import AgiSurvey, run_survey
from monitor.sim.emit import SNAPSHOT
from monitor.sim.live import MEMBER_FIELDS, Live
from monitor.sim.scenario import Simulation

log = logging.getLogger(__name__)
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
#: A client that lets this much pile up unread is dropped, as Asterisk drops slow AMI readers.
MAX_BUFFER = 4 << 20
Msg = dict[str, str]


class _Client:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.logged_in = False
        self.events = True

    def send(self, *messages: Msg) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(b"".join(encode(m) for m in messages))
        if self.writer.transport.get_write_buffer_size() > MAX_BUFFER:
            log.warning("demo AMI: dropping a client that does not read")
            self.writer.close()


class AmiSimServer:
    """Serves the simulation to AMI clients: Login, Events, Ping, QueueStatus, CoreShowChannels, Logoff.

    The call center opens (simulated time starts) when the first client logs in, so a client never misses the
    first calls. With ``agi_port`` (the daemon's FastAGI survey port) the simulated Asterisk runs each post-call
    survey of a ``survey_via="agi"`` simulation over FastAGI, as ``AGI()`` does. ``record``: keep every event sent.
    """

    def __init__(self, sim: Simulation, *, speed: float = 1.0, username: str = "qmon", secret: str = "demo",
                 clock: Callable[[], float] = time.time, agi_port: int | None = None, record: bool = False) -> None:
        self.sim, self.speed, self.username, self.secret, self.clock = sim, speed, username, secret, clock
        self.agi_port = agi_port
        self.clients: set[_Client] = set()
        self._origin: tuple[float, float] | None = None
        self._opened = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._surveys: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.sent: list[Msg] | None = [] if record else None

    @property
    def live(self) -> Live:
        """The mirror of what the stream has said so far."""
        return self.sim.live

    def sim_now(self) -> float:
        """Simulated time: wall time since start, times the speed factor."""
        if self._origin is None:
            return self.sim.start
        wall0, sim0 = self._origin
        return sim0 + (self.clock() - wall0) * self.speed

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def run(self) -> None:
        """Pace the simulation forever (cancel to stop), from the first login on."""
        await self._opened.wait()
        try:
            while True:
                for _, headers in self.sim.advance(self.sim_now()):
                    if self.sent is not None:
                        self.sent.append(headers)
                    for c in list(self.clients):
                        if c.logged_in and c.events:
                            c.send(headers)
                while self.sim.agi_due:
                    self._start_survey(self.sim.agi_due.pop(0))
                wait = (self.sim.next_time() - self.sim_now()) / self.speed
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(max(wait, 0.001), 0.25))
        finally:
            for t in list(self._surveys):
                t.cancel()

    def _start_survey(self, s: AgiSurvey) -> None:
        """The survey's AGI() runs: connect to qmon's FastAGI server (no port: as if qmon were down)."""

        def emit(kind: str, name: str, value: str) -> None:
            self.sim.agi_event(s, self.sim_now(), kind, name, value)
            self._wake.set()

        if self.agi_port is None:
            s.agistatus = "FAILURE"
            emit("end", "", "FAILURE")
            return
        task = asyncio.create_task(run_survey(s, self.agi_port, self.sim.agi_headers(s), emit, self.speed),
                                   name="demo-agi-survey")
        self._surveys.add(task)
        task.add_done_callback(self._surveys.discard)

    async def close(self) -> None:
        """Stop listening and hang up on every client."""
        if self._server is not None:
            self._server.close()
        for c in list(self.clients):
            c.writer.close()
        if self._server is not None:
            with suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        self.clients.add(client)
        parser = WireParser(expect_banner=False)
        writer.write(BANNER)
        try:
            while not writer.is_closing():
                data = await reader.read(65536)
                if not data:
                    break
                for msg in parser.feed(data):
                    self._action(client, {k: first(v) or "" for k, v in msg.items()})
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.clients.discard(client)
            writer.close()

    def _action(self, c: _Client, msg: Msg) -> None:
        name = msg.get("Action", "").lower()
        aid = {"ActionID": msg["ActionID"]} if "ActionID" in msg else {}
        if name == "login":
            if msg.get("Username") == self.username and msg.get("Secret") == self.secret:
                c.logged_in = True
                if self._origin is None:
                    self._origin = (self.clock(), self.sim.start)
                    self._opened.set()
                c.events = msg.get("Events", "on").lower() not in ("off", "no", "false")
                c.send({"Response": "Success", **aid, "Message": "Authentication accepted"},
                       {"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "0", "LastReload": "0",
                        "Status": "Fully Booted"})
            else:
                c.send({"Response": "Error", **aid, "Message": "Authentication failed"})
                c.writer.close()
        elif name == "logoff":
            c.send({"Response": "Goodbye", **aid, "Message": "Thanks for all the fish."})
            c.writer.close()
        elif not c.logged_in:
            c.send({"Response": "Error", **aid, "Message": "Permission denied"})
        elif name == "ping":
            c.send({"Response": "Success", **aid, "Ping": "Pong", "Timestamp": f"{self.sim_now():.6f}"})
        elif name == "events":
            c.events = msg.get("EventMask", "on").lower() not in ("off", "no", "false")
            c.send({"Response": "Success", **aid, "Events": "On" if c.events else "Off"})
        elif name == "queuestatus":
            c.send(*queue_status(self.live, self.sim_now(), aid, msg.get("Queue", "")))
        elif name == "coreshowchannels":
            c.send(*core_show_channels(self.live, aid))
        else:
            c.send({"Response": "Error", **aid, "Message": "Invalid/unknown command"})


def queue_status(live: Live, now: float, aid: Msg, only: str = "") -> list[Msg]:
    """The QueueStatus answer (Response, QueueParams/QueueMember/QueueEntry, QueueStatusComplete)."""
    out: list[Msg] = [{"Response": "Success", **aid, "EventList": "start", "Message": "Queue status will follow"}]
    for queue in live.queue_names:
        if only and queue != only:
            continue
        line = live.waiting.get(queue, [])
        out.append({"Event": "QueueParams", "Queue": queue, "Max": "0", "Strategy": "rrmemory",
                    "Calls": str(len(line)), "Holdtime": "0", "TalkTime": "0", "Completed": "0", "Abandoned": "0",
                    "ServiceLevel": "20", "ServicelevelPerf": "0.0", "ServicelevelPerf2": "0.0", "Weight": "0",
                    **aid})
        for (q, _), m in sorted(live.members.items()):
            if q == queue:
                values = dict(zip(MEMBER_FIELDS, Live.member_values(m), strict=True))
                out.append({"Event": "QueueMember", "Queue": q, "Name": m.name, "Location": m.interface,
                            **{k: values[k] for k in MEMBER_FIELDS[3:] if k != "Ringinuse"}, **aid})
        for pos, w in enumerate(line, 1):
            out.append({"Event": "QueueEntry", "Queue": queue, "Position": str(pos), "Channel": w.channel,
                        "Uniqueid": w.uid, "CallerIDNum": w.num, "CallerIDName": w.name, "ConnectedLineNum": w.num,
                        "ConnectedLineName": w.name, "Wait": str(int(now - w.join_ts)), "Priority": "0", **aid})
    out.append({"Event": "QueueStatusComplete", **aid, "EventList": "Complete", "ListItems": str(len(out) - 1)})
    return out


def core_show_channels(live: Live, aid: Msg) -> list[Msg]:
    """The CoreShowChannels answer: one CoreShowChannel per live channel."""
    out: list[Msg] = [{"Response": "Success", **aid, "EventList": "start", "Message": "Channels will follow"}]
    for snap in live.channels.values():
        out.append({"Event": "CoreShowChannel", **aid, **{k: snap.get(k, "") for k in SNAPSHOT},
                    "BridgeId": "", "Application": "", "ApplicationData": "", "Duration": "00:00:00",
                    "BridgedChannel": "", "BridgedUniqueID": ""})
    out.append({"Event": "CoreShowChannelsComplete", **aid, "EventList": "Complete",
                "ListItems": str(len(out) - 1)})
    return out
