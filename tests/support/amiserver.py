"""A real TCP Asterisk Manager Interface server for tests, fed from recorded transcripts or header dicts.

It speaks what qmon (and panoramisk) expect from Asterisk 22: the banner, ``Login`` (success, or
``Response: Error / Message: Authentication failed`` and a closed socket, as Asterisk does), then it streams
a message list — whole, in seeded random chunk sizes, or byte by byte — while answering ``Ping`` (with the PBX
clock's ``Timestamp``), ``QueueStatus``, ``CoreShowChannels`` (fields and order as recorded in
``fixtures/live22/resync-responses.ami``: QueueEntry has no Linkedid), ``Originate`` and ``Logoff``. It can cut
the connection at a message index (after a partial write of that message), stall at one (silent, socket open),
and let the next connection continue from a chosen index; it can play an Asterisk that restarts (``booting``:
QueueStatus answers ``Invalid/unknown command`` until :meth:`AmiTestServer.finish_boot`) for a user with or
without the ``system`` read class (FullyBooted, or never).

Typical use::

    async with AmiTestServer.from_transcript("concurrent", mode="chunks", seed=1) as srv:
        ...connect to 127.0.0.1:srv.port as user "qmon", secret "secret"...
        await srv.wait_streamed()

Stable API: :class:`AmiTestServer` (``port``, ``actions``, ``logins``, ``connections``, ``state``, ``queues``,
``drop_at``/``drop_after_bytes``/``resume_at``/``stall_at``, ``booting``/``system_events``/``finish_boot``,
``stream_after``, ``pbx_now``, ``start``/``close``/``wait_streamed``/``push``/``disconnect``), :class:`AmiState`,
:func:`transcript_messages`, :func:`state_at`, :func:`queue_params`, :func:`queue_member`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.ami.wire import Headers, WireParser, encode, first

FIXTURES = Path(__file__).parent.parent / "fixtures"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
#: Handler of an extra action: gets the action headers, returns the reply messages (ActionID is added).
ActionHandler = Callable[[Headers], list[Headers]]
_CHANNEL_KEYS = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
                 "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid",
                 "Linkedid")
#: Asterisk 22's answer while app_queue is not loaded yet (manager.c, process_message), seen live right after
#: ``core restart now``.
UNKNOWN_COMMAND = "Invalid/unknown command: {}. Use Action: ListCommands to show available commands."
_TIMESTAMP = re.compile(rb"\r\nTimestamp: ([0-9.]+)\r\n")


def transcript_messages(scenario_or_path: str | Path) -> list[bytes]:
    """The raw wire bytes of each message of an ``.ami`` capture after its banner and Login response."""
    path = Path(scenario_or_path)
    if not path.suffix:
        path = FIXTURES / f"{scenario_or_path}.ami"
    raw = path.read_bytes()
    raw = raw[raw.index(b"\n") + 1:]  # the banner: we send our own
    out: list[bytes] = []
    start = 0
    while start < len(raw):
        end = raw.find(b"\r\n\r\n", start)
        end = len(raw) if end < 0 else end + 4
        out.append(raw[start:end])
        start = end
    if out and out[0].startswith(b"Response:"):
        out.pop(0)  # the capture's own Login response: we answer the client's Login ourselves
    return out


@dataclass
class AmiState:
    """What ``QueueStatus`` and ``CoreShowChannels`` report (list-event headers, without ActionID)."""

    queue_params: list[Headers] = field(default_factory=list)
    queue_members: list[Headers] = field(default_factory=list)
    queue_entries: list[Headers] = field(default_factory=list)
    channels: list[Headers] = field(default_factory=list)
    clock: float | None = None  # the PBX clock at this state (the last Timestamp before it), epoch s


def queue_params(queue: str, calls: int = 0, strategy: str = "rrmemory") -> Headers:
    """A QueueParams entry shaped as Asterisk 22's (live-asterisk-22/ami/resync-responses.ami)."""
    return {"Queue": queue, "Max": "0", "Strategy": strategy, "Calls": str(calls), "Holdtime": "0", "TalkTime": "0",
            "Completed": "0", "Abandoned": "0", "ServiceLevel": "20", "ServicelevelPerf": "0.0",
            "ServicelevelPerf2": "0.0", "Weight": "0"}


def queue_member(queue: str, name: str, location: str, status: str = "1", paused: str = "0", reason: str = "",
                 in_call: str = "0") -> Headers:
    """A QueueMember entry shaped as Asterisk 22's."""
    return {"Queue": queue, "Name": name, "Location": location, "StateInterface": location, "Membership": "dynamic",
            "Penalty": "0", "CallsTaken": "0", "LastCall": "0", "LastPause": "0", "LoginTime": "0",
            "InCall": in_call, "Status": status, "Paused": paused, "PausedReason": reason, "Wrapuptime": "0"}


def state_at(messages: Sequence[Headers], upto: int, now: float | None = None,
             queues: Sequence[str] = ()) -> AmiState:
    """The Asterisk state right before ``messages[upto]``: live channels, waiting callers, members, queues
    (``queues``: configured queues, listed even without members or callers), shaped as Asterisk 22 answers."""
    chans: dict[str, Headers] = {}
    entries: dict[str, Headers] = {}
    members: dict[tuple[str, str], Headers] = {}
    found: dict[str, None] = dict.fromkeys(queues)
    last_ts = now
    for msg in messages[:upto]:
        name, uid = first(msg.get("Event")), first(msg.get("Uniqueid")) or ""
        ts = first(msg.get("Timestamp"))
        last_ts = float(ts) if ts else last_ts
        queue = first(msg.get("Queue")) or ""
        if name == "Newchannel":
            chans[uid] = {k: msg[k] for k in _CHANNEL_KEYS if k in msg} | {"_start": ts or "0"}
        elif name == "Newexten" and uid in chans:
            chans[uid]["Application"] = msg.get("Application", "")
            chans[uid]["ApplicationData"] = msg.get("AppData", "")
        elif name in ("BridgeEnter", "BridgeLeave") and uid in chans:
            chans[uid]["BridgeId"] = msg.get("BridgeUniqueid", "") if name == "BridgeEnter" else ""
        elif name == "Hangup":
            chans.pop(uid, None)
        elif name == "QueueCallerJoin":
            # QueueEntry has no Linkedid (app_queue.c, manager_queues_status).
            entries[uid] = {"Queue": queue, "Position": msg.get("Position", "1"), "Channel": msg.get("Channel", ""),
                            "Uniqueid": uid, "CallerIDNum": msg.get("CallerIDNum", ""),
                            "CallerIDName": msg.get("CallerIDName", ""),
                            "ConnectedLineNum": msg.get("ConnectedLineNum", ""),
                            "ConnectedLineName": msg.get("ConnectedLineName", ""), "_start": ts or "0"}
            found[queue] = None
        elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
            entries.pop(uid, None)
        elif name in ("QueueMemberAdded", "QueueMemberStatus", "QueueMemberPause", "QueueMember"):
            member = first(msg.get("MemberName")) or first(msg.get("Name")) or ""
            members[(queue, member)] = queue_member(
                queue, member, first(msg.get("Interface", msg.get("Location", ""))) or "",
                first(msg.get("Status")) or "1", first(msg.get("Paused")) or "0",
                first(msg.get("PausedReason")) or "", first(msg.get("InCall")) or "0")
            found[queue] = None
        elif name == "QueueMemberRemoved":
            members.pop((queue, first(msg.get("MemberName")) or ""), None)
    clock = last_ts or 0.0

    def age(h: Headers) -> int:
        return max(0, int(clock - float(first(h.pop("_start", "0")) or 0)))

    listed: list[Headers] = []
    for ch in chans.values():
        secs = age(ch)
        listed.append({**{k: v for k, v in ch.items() if k != "BridgeId"},
                       "Application": ch.get("Application", ""), "ApplicationData": ch.get("ApplicationData", ""),
                       "Duration": f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}",
                       "BridgeId": ch.get("BridgeId", "")})
    for e in entries.values():
        e["Wait"] = str(age(e))
        e["Priority"] = "0"
    params = [queue_params(q, sum(e.get("Queue") == q for e in entries.values())) for q in found if q]
    return AmiState(params, list(members.values()), list(entries.values()), listed, last_ts)


class AmiTestServer:
    """A scripted AMI server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        messages: Sequence[bytes | Mapping[str, Any]] = (),
        *,
        username: str = "qmon",
        secret: str = "secret",
        mode: str = "whole",
        seed: int = 0,
        max_chunk: int = 1500,
        drop_at: int | None = None,
        drop_after_bytes: int | None = None,
        resume_at: int | None = None,
        state: AmiState | str = "auto",
        originate: str = "Success",
        message_delay_s: float = 0.0,
        handlers: Mapping[str, ActionHandler] | None = None,
        queues: Sequence[str] = (),
        booting: bool = False,
        system_events: bool = True,
        stream_after: str | None = None,
        stall_at: int | None = None,
    ) -> None:
        if mode not in ("whole", "chunks", "bytes"):
            raise ValueError(f"mode must be whole, chunks or bytes, not {mode!r}")
        self.messages: list[bytes] = [m if isinstance(m, bytes) else encode(m) for m in messages]
        self.username, self.secret = username, secret
        self.mode, self.max_chunk, self.message_delay_s = mode, max_chunk, message_delay_s
        self._rng = random.Random(seed)
        #: Cut the connection that reaches this message index, after ``drop_after_bytes`` of it (default:
        #: half) were written. One-shot: cleared once it fired.
        self.drop_at, self.drop_after_bytes = drop_at, drop_after_bytes
        #: Where the connection after a cut continues (default: the cut message, sent again whole).
        self.resume_at = resume_at
        #: What QueueStatus/CoreShowChannels report: "auto" (the default) = derived from the stream up to the
        #: message the asking connection is at, i.e. from every stream message written before the answer on the
        #: wire (what Asterisk would really have alive there: its answer never contradicts the events it already
        #: sent); or a fixed AmiState, for a test that plays a PBX whose truth differs from the stream (e.g. one
        #: that restarted). Messages sent with :meth:`push` are not part of the derived state.
        self.state: AmiState | str = state
        self._parsed: list[list[Headers]] | None = None  # per stream message: what it parses to (0..n dicts)
        self.originate = originate  # "Success" or "Error"
        self.handlers: dict[str, ActionHandler] = {k.lower(): v for k, v in (handlers or {}).items()}
        #: Configured queues: listed by QueueStatus (state "auto") even without members or callers.
        self.queues = tuple(queues)
        #: Asterisk right after ``core restart now``: the AMI is up, app_queue is not loaded, so QueueStatus
        #: answers UNKNOWN_COMMAND until :meth:`finish_boot`.
        self.booting = booting
        #: The logged-in user has the ``system`` read class: FullyBooted at login (once booted) and when the boot
        #: finishes. qmon's least-privilege user (asterisk/manager.conf) has not: it never sees FullyBooted.
        self.system_events = system_events
        self._pbx_ts: tuple[float, float] | None = None  # (last Timestamp streamed, time.monotonic() then)
        #: Hold each connection's stream until this action (e.g. "CoreShowChannels") was answered: nothing
        #: happens on the PBX during the resync, so a test knows exactly what the snapshot holds.
        self.stream_after = stream_after.lower() if stream_after else None
        #: The connection that reaches this message index goes silent there (no more events, no answers, socket
        #: open: a hung Asterisk); the next connection resumes at that index. One-shot.
        self.stall_at = stall_at
        self.port = 0
        self.actions: list[Headers] = []  # every action received, with "_conn" = connection number (1-based)
        self.logins: list[tuple[str, bool]] = []  # (username, accepted) per Login
        self.connections = 0  # TCP connections accepted
        self.next_index = 0  # the next stream message a newly logged-in connection gets
        self._streamed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._conns: dict[int, _Conn] = {}

    @classmethod
    def from_transcript(cls, scenario_or_path: str | Path, **kwargs: Any) -> AmiTestServer:
        """A server streaming a recorded ``.ami`` capture (a scenario name of ``tests/fixtures`` or a path)."""
        return cls(transcript_messages(scenario_or_path), **kwargs)

    def _per_message(self) -> list[list[Headers]]:
        """What each stream message parses to, by stream index (garbage: none, or several dicts)."""
        if self._parsed is None:
            p = WireParser(expect_banner=False)
            self._parsed = [p.feed(raw) for raw in self.messages]
        return self._parsed

    @property
    def headers(self) -> list[Headers]:
        """The stream messages parsed (for :func:`state_at` and assertions)."""
        return [m for parsed in self._per_message() for m in parsed]

    def state_for(self, index: int) -> AmiState:
        """The state reported to a connection whose stream is at message ``index`` (stream messages written:
        ``0..index-1``; a message that is garbage on the wire counts as what it parses to, if anything)."""
        if isinstance(self.state, AmiState):
            return self.state
        if self.state != "auto":
            raise ValueError(f"state must be an AmiState or 'auto', not {self.state!r}")
        written = [m for parsed in self._per_message()[:index] for m in parsed]
        return state_at(written, len(written), queues=self.queues)

    def pbx_now(self, index: int | None = None) -> float:
        """The PBX clock (what Asterisk's Ping answer carries): the last Timestamp streamed plus the time since;
        before any, the state's clock (else the wall clock)."""
        if self._pbx_ts is not None:
            ts, at = self._pbx_ts
            return ts + (time.monotonic() - at)
        state = self.state_for(index or 0)
        return state.clock if state.clock is not None else time.time()

    def finish_boot(self) -> None:
        """app_queue is loaded now; users with the ``system`` class get FullyBooted (manager.c broadcasts it)."""
        self.booting = False
        if self.system_events:
            for conn in self._conns.values():
                if conn.logged_in:
                    conn.reply([_fully_booted()])

    async def start(self, port: int = 0) -> AmiTestServer:
        """Listen on a loopback port (default: a free one)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            conn.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> AmiTestServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_streamed(self, timeout_s: float = 30.0) -> None:
        """Wait until a connection has written the last stream message."""
        await asyncio.wait_for(self._streamed.wait(), timeout_s)

    async def push(self, message: Mapping[str, Any]) -> None:
        """Send one extra message (an event) to every logged-in connection, between stream messages."""
        for conn in self._conns.values():
            if conn.logged_in:
                conn.reply([dict(message)])

    def disconnect(self) -> None:
        """Drop every open connection now (like an Asterisk restart)."""
        for conn in list(self._conns.values()):
            conn.abort()

    def actions_named(self, name: str) -> list[Headers]:
        """The received actions of one type (case-insensitive), in order."""
        return [a for a in self.actions if (first(a.get("Action")) or "").lower() == name.lower()]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = _Conn(self, self.connections, reader, writer)
        self._conns[conn.number] = conn
        try:
            await conn.run()
        finally:
            self._conns.pop(conn.number, None)


class _Conn:
    """One client connection: a reader task answering actions and a writer task streaming messages."""

    def __init__(self, srv: AmiTestServer, number: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.srv, self.number, self.reader, self.writer = srv, number, reader, writer
        self.logged_in = False
        # What the writer sends besides the stream, in order: bytes, an int (start the stream there), None (close).
        self._out: deque[bytes | int | None] = deque()
        self._wake = asyncio.Event()
        self.index = 0  # the next stream message this connection writes
        self.held: int | None = None  # the stream start, held until the stream_after action
        self.stalled = False

    def abort(self) -> None:
        self.writer.transport.abort()

    def reply(self, msgs: list[Headers], action: Headers | None = None) -> None:
        aid = first(action.get("ActionID")) if action else None
        for m in msgs:
            if aid and "ActionID" not in m:
                head, *rest = m.items()  # Asterisk puts ActionID right after Response:/Event:
                m = dict([head, ("ActionID", aid), *rest])
            self._out.append(encode(m))
        self._wake.set()

    def end(self) -> None:
        """Close after what is queued (Logoff, failed Login, end of the reader)."""
        self._out.append(None)
        self._wake.set()

    async def run(self) -> None:
        self.writer.write(BANNER)
        writer_task = asyncio.create_task(self._write_loop())
        try:
            await self._read_loop()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.end()
            writer_task.cancel()
            with contextlib.suppress(BaseException):
                await writer_task
            self.abort()

    async def _read_loop(self) -> None:
        parser = WireParser(expect_banner=False)
        while data := await self.reader.read(65536):
            for action in parser.feed(data):
                self.srv.actions.append({**action, "_conn": str(self.number)})
                if self._handle(action) == "close":
                    return

    def _handle(self, action: Headers) -> str | None:
        name = (first(action.get("Action")) or "").lower()
        srv = self.srv
        if name == "login":
            user = first(action.get("Username")) or ""
            ok = user == srv.username and first(action.get("Secret")) == srv.secret
            srv.logins.append((user, ok))
            if not ok:
                self.reply([{"Response": "Error", "Message": "Authentication failed"}], action)
                self.end()  # Asterisk closes the session after a failed login
                return None
            self.reply([{"Response": "Success", "Message": "Authentication accepted"}], action)
            self.logged_in = True
            self._start_stream()
            return None
        if name == "logoff":
            self.reply([{"Response": "Goodbye", "Message": "Thanks for all the fish."}], action)
            self.end()
            return None
        if not self.logged_in:
            self.reply([{"Response": "Error", "Message": "Authentication Required"}], action)
            return None
        if self.stalled:
            return None
        self._answer(name, action)
        if srv.stream_after == name and self.held is not None:
            self._out.append(self.held)  # the stream starts right after this answer
            self.held = None
            self._wake.set()
        return None

    def _answer(self, name: str, action: Headers) -> None:
        srv = self.srv
        if name in srv.handlers:  # tests may override the built-in answers (e.g. a Ping that never comes back)
            self.reply(srv.handlers[name](action), action)
        elif name == "ping":
            self.reply([{"Response": "Success", "Ping": "Pong", "Timestamp": f"{srv.pbx_now(self.index):.6f}"}],
                       action)
        elif name == "queuestatus" and srv.booting:
            self.reply([{"Response": "Error", "Message": UNKNOWN_COMMAND.format(first(action.get("Action")))}],
                       action)
        elif name == "queuestatus":
            self.reply(self._queue_status(first(action.get("Queue"))), action)
        elif name == "coreshowchannels":
            chans = srv.state_for(self.index).channels
            self.reply(_list("CoreShowChannel", "Channels will follow", chans), action)
        elif name == "originate":
            self.reply(self._originate(action), action)
        else:
            self.reply([{"Response": "Error", "Message": f"Invalid/unknown command: {first(action.get('Action'))}. "
                                                         "Use Action: ListCommands to show available commands."}],
                       action)

    def _queue_status(self, queue: str | None) -> list[Headers]:
        st = self.srv.state_for(self.index)
        items: list[tuple[str, Headers]] = []
        for params in st.queue_params:
            q = params.get("Queue")
            if queue and q != queue:
                continue
            items.append(("QueueParams", params))
            items += [("QueueMember", m) for m in st.queue_members if m.get("Queue") == q]
            items += [("QueueEntry", e) for e in st.queue_entries if e.get("Queue") == q]
        out: list[Headers] = [{"Response": "Success", "EventList": "start", "Message": "Queue status will follow"}]
        out += [{"Event": name, **h} for name, h in items]
        out.append({"Event": "QueueStatusComplete", "EventList": "Complete", "ListItems": str(len(items))})
        return out

    def _originate(self, action: Headers) -> list[Headers]:
        ok = self.srv.originate == "Success"
        if (first(action.get("Async")) or "false").lower() not in ("true", "yes", "1"):
            return [{"Response": "Success", "Message": "Originate successfully queued"} if ok
                    else {"Response": "Error", "Message": "Originate failed"}]
        result = {"Event": "OriginateResponse", "Response": "Success" if ok else "Failure",
                  "Channel": first(action.get("Channel")) or "", "Reason": "4" if ok else "0",
                  "Uniqueid": "<null>" if not ok else f"{time.time():.0f}.999"}
        return [{"Response": "Success", "Message": "Originate successfully queued"}, result]

    def _start_stream(self) -> None:
        srv = self.srv
        start = self.index = srv.next_index
        if start < len(srv.messages):
            srv._streamed.clear()
        if srv.system_events and not srv.booting and not (
                start == 0 and srv.messages[:1] and srv.messages[0].startswith(b"Event: FullyBooted")):
            # Asterisk greets a login with FullyBooted when booted and the user may read `system` events; a
            # transcript streamed from its start has its own.
            self.reply([_fully_booted()])
        if srv.stream_after:
            self.held = start
            return
        self._out.append(start)  # in order: the stream starts after the Login response and FullyBooted
        self._wake.set()

    def _chunk(self) -> int:
        if self.srv.mode == "bytes":
            return 1
        if self.srv.mode == "chunks":
            return self.srv._rng.randint(1, self.srv.max_chunk)
        return 1 << 30

    async def _write_loop(self) -> None:
        srv = self.srv
        buf = bytearray()
        index: int | None = None  # None until logged in
        cut = False
        while True:
            size = self._chunk()
            # Fill the buffer up to one chunk, replies first and only at message boundaries (the buffer's tail
            # always ends one), so chunks may span messages but never interleave them.
            while len(buf) < size and not cut:
                if self._out:
                    item = self._out.popleft()
                    if item is None:
                        if buf:
                            self.writer.write(bytes(buf))
                            await self.writer.drain()
                        self.writer.close()
                        return
                    if isinstance(item, int):
                        index = item
                    else:
                        buf += item
                elif index is not None and index < len(srv.messages):
                    msg = srv.messages[index]
                    if srv.stall_at == index:
                        srv.stall_at, srv.next_index, self.stalled = None, index, True
                        self._out.clear()
                        break
                    if self.stalled:
                        break
                    if srv.drop_at == index:
                        keep = len(msg) // 2 if srv.drop_after_bytes is None else srv.drop_after_bytes
                        buf += msg[:keep]
                        srv.next_index = index if srv.resume_at is None else srv.resume_at
                        srv.drop_at = None
                        cut = True
                        break
                    buf += msg
                    if (m := _TIMESTAMP.search(msg)) is not None:
                        srv._pbx_ts = (float(m.group(1)), time.monotonic())
                    index += 1
                    self.index = index
                    srv.next_index = max(srv.next_index, index)
                    if srv.message_delay_s:
                        break
                else:
                    break
            if buf:
                n = min(size, len(buf))
                self.writer.write(bytes(buf[:n]))
                del buf[:n]
                await self.writer.drain()
                if srv.mode != "whole":
                    await asyncio.sleep(0)  # let the reader run so it really sees the small pieces
                if srv.message_delay_s and not buf:
                    await asyncio.sleep(srv.message_delay_s)
                continue
            if cut:
                self.writer.close()  # a partial message, then EOF: the peer sees the cut mid-event
                return
            if index is not None and index >= len(srv.messages):
                srv._streamed.set()
            self._wake.clear()
            await self._wake.wait()


def _fully_booted() -> Headers:
    return {"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "1", "LastReload": "1",
            "Status": "Fully Booted"}


def _list(event: str, message: str, items: list[Headers]) -> list[Headers]:
    out: list[Headers] = [{"Response": "Success", "EventList": "start", "Message": message}]
    out += [{"Event": event, **h} for h in items]
    out.append({"Event": f"{event}sComplete", "EventList": "Complete", "ListItems": str(len(items))})
    return out
