"""The live AMI source: panoramisk ``Manager`` + our wire parser, reconnect with backoff, resync, fed synchronously.

panoramisk is used for what it does well (Action IDs, responses into futures), with workarounds for traps in its
1.4 source: **framing/parsing** is :class:`monitor.ami.wire.WireParser` (panoramisk decodes each TCP read alone
with ``errors='ignore'``, strips a last empty header, never bounds its buffer); **reconnect** is ours
(``Manager.connection_lost`` retries every 2 s without backoff and re-sends pending actions: an ``Originate``
could ring a customer twice) — a lost connection fails pending actions with :class:`AmiNotConnected` and
:meth:`AmiSource.run` reconnects with capped exponential backoff + jitter, then resyncs
(:mod:`monitor.ami.resync`, retried until Asterisk answers); **keepalive** is ours (panoramisk's pinger never
checks for an answer): each ``Ping`` is awaited with a timeout and the connection dropped without one. A peer
that sends no Asterisk banner line within ``MAX_BANNER_BYTES`` is dropped at once.

Events go straight from the wire parser into :meth:`Ingest.feed` on the read path (no panoramisk dispatch: its
coroutine callbacks would run fire-and-forget, out of order); nothing is awaited there. Answers to our actions go
to panoramisk, except the resync's, which go to the resync in wire order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, cast

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from monitor.ami.resync import LIST_ANSWERS, RESYNC_PREFIX, Resyncer
from monitor.ami.wire import Headers, WireParser
from monitor.core.ingest import Ingest
from monitor.core.vocab import SkipReason
from monitor.settings import AmiSettings

log = logging.getLogger("qmon.ami")

#: Asterisk's banner is one short line ("Asterisk Call Manager/11.0.0", manager.c); a peer that sends more than
#: this before a line end, or another banner, is not an AMI server and is dropped at once (never buffered).
MAX_BANNER_BYTES = 1024


class AmiAuthError(Exception):
    """Asterisk refused our Login (names the host and user, never the secret)."""

    def __init__(self, host: str, port: int, user: str, reason: str) -> None:
        super().__init__(f"AMI login as {user!r} on {host}:{port} refused: {reason}")
        self.host, self.port, self.user, self.reason = host, port, user, reason


class AmiNotConnected(ConnectionError):
    """An action was sent while not logged in, or the connection dropped before its answer."""


def _headers(msg: Message) -> Headers:
    """The plain header dict our parser built for a panoramisk Message (same shape as in replays)."""
    raw = getattr(msg, "qmon_headers", None)
    return cast(Headers, raw) if raw is not None else {str(k): v for k, v in msg.items()}


class _Protocol(AMIProtocol):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's AMIProtocol with wire.py framing and no re-queueing of actions on close."""

    def __init__(self, manager: _Manager, on_event: Callable[[Headers], None],
                 on_resync: Callable[[str, Headers], None]) -> None:
        super().__init__()
        self._manager = manager
        self._on_event = on_event
        self._on_resync = on_resync
        self.parser = WireParser(expect_banner=True)
        self.refused = ""  # why we dropped the peer (not an AMI server), for the login error
        self._head = b""  # the banner line so far (at most MAX_BANNER_BYTES)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # AMIProtocol.connection_made resets these; set them before the first byte can arrive.
        self.factory = self._manager
        self.log = log
        self.encoding = "utf-8"

    def data_received(self, data: bytes) -> None:
        self._manager.bytes_received += len(data)
        if self._manager.tap is not None:
            self._manager.tap(data)
        if self.parser.banner is None and not self._banner_ok(data):
            return
        garbage = self.parser.unparseable, self.parser.oversized
        messages = self.parser.feed(data)
        if (self.parser.unparseable, self.parser.oversized) != garbage:  # counted, logged once (Ingest.skip)
            self._manager.on_garbage(self.parser.unparseable - garbage[0], self.parser.oversized - garbage[1])
        for headers in messages:
            try:
                self._route(headers)
            except Exception:  # one bad message (or a listener bug) must not kill the connection
                log.exception("AMI %s: failed to handle %s", self._manager.name, headers.get("Event") or "response")

    def _banner_ok(self, data: bytes) -> bool:
        """Before the banner: False (and the connection dropped) once the peer is plainly not Asterisk."""
        nl = data.find(b"\n")
        line = self._head + (data if nl < 0 else data[:nl])
        if len(line) > MAX_BANNER_BYTES:
            self.refused = f"not an AMI server (no banner line within {MAX_BANNER_BYTES} bytes)"
        elif nl < 0:
            self._head = line
            return True
        elif b"Call Manager" not in line:
            self.refused = f"not an AMI server (banner {bytes(line[:60]).decode('utf-8', 'replace')!r})"
        else:
            return True
        log.warning("AMI %s: %s; dropping the connection", self._manager.name, self.refused)
        self.connection_lost(None)
        return False

    def _route(self, headers: Headers) -> None:
        """An answer to a pending action -> panoramisk; a resync answer -> the resync; any other event -> our read
        path, as parsed."""
        action_id = headers.get("ActionID")
        if isinstance(action_id, str) and action_id.startswith(RESYNC_PREFIX):
            self._on_resync(action_id, headers)
            return
        if "Event" not in headers or (isinstance(action_id, str) and action_id in self.responses):
            msg = Message(headers)
            msg.qmon_headers = headers
            self.handle_message(msg)
            return
        if headers.get("Event") == "Shutdown":  # Asterisk is stopping: the connection is over
            self.connection_lost(None)
        self._on_event(headers)

    def close(self) -> None:
        pending = {id(a): a for a in self.responses.values()}
        self.responses.clear()
        why = self.refused or "connection closed before the {} answer"
        for action in pending.values():
            if not action.future.done():
                action.future.set_exception(AmiNotConnected(why.format(action["action"])))
                action.future.exception()  # mark retrieved: nobody may be waiting (e.g. a timed-out Ping)
        if not self.is_closed:
            self.closed = True
            self.transport.close()

    @property
    def is_closed(self) -> bool:
        """True once closed (``closed`` is panoramisk's untyped attribute)."""
        return bool(getattr(self, "closed", True))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()
        self._manager.protocol_lost(self, exc)


class _Manager(Manager):  # type: ignore[misc]  # panoramisk is untyped
    """A panoramisk Manager that never reconnects or re-sends by itself (AmiSource owns that)."""

    def __init__(self, name: str, on_lost: Callable[[_Protocol, Exception | None], None]) -> None:
        super().__init__(ping_delay=0, reconnect_timeout=0)
        self.name = name
        self._on_lost = on_lost
        self.tap: Callable[[bytes], None] | None = None
        self.bytes_received = 0
        #: (unparseable blocks, oversized messages) just dropped or passed over by the wire parser.
        self.on_garbage: Callable[[int, int], None] = lambda unparseable, oversized: None

    def protocol_lost(self, proto: _Protocol, exc: Exception | None) -> None:
        self.awaiting_actions.clear()
        self._on_lost(proto, exc)

    def connection_lost(self, exc: Exception | None) -> None:  # panoramisk's "Shutdown" event path
        self.awaiting_actions.clear()


class AmiSource:
    """One AMI connection feeding one :class:`Ingest`; :meth:`run` until :meth:`close`."""

    def __init__(self, settings: AmiSettings, ingest: Ingest, *, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.ingest = ingest
        self._clock = clock
        self._rng = rng
        self._manager = _Manager(settings.name, self._lost)
        self._manager.on_garbage = self._garbage
        self._listeners: defaultdict[str, list[Callable[[Headers], None]]] = defaultdict(list)
        self._proto: _Protocol | None = None
        self._lost_event = asyncio.Event()
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._resync = Resyncer(settings, ingest, clock=clock, rng=rng, feed=self._feed)
        self._ever_up = False
        self._down_since: float | None = None
        self._attempts = 0
        self._logged_error = ""
        self.connected = False
        self.reconnects = 0
        self.last_event_at: float | None = None
        self.last_error = ""
        #: Called with every received chunk of bytes, as received (the recorder uses it; None = off).
        self.tap: Callable[[bytes], None] | None = None

    @property
    def name(self) -> str:
        """The pbx label of this connection."""
        return self.settings.name

    @property
    def synced(self) -> bool:
        """Logged in and resynced: the tracker's calls and members are Asterisk's (``/readyz`` reads this)."""
        return self.connected and self._resync.synced

    @property
    def resync_error(self) -> str:
        """Why the resync has not succeeded yet ("" when it has, or has not started)."""
        return self._resync.error

    @property
    def bytes_received(self) -> int:
        """AMI bytes read over all connections."""
        return int(self._manager.bytes_received)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, log in, resync, stream events; reconnect with capped backoff + jitter until closed.

        Every login (the first included) is followed by a resync, so callers already waiting and the members'
        state are known from the start. A refused Login is not fatal: the secret may be fixed on the Asterisk
        side without restarting qmon, so we keep trying, but only every ``backoff_max_s`` (each attempt costs a
        security event, and tools like fail2ban ban hosts that fail fast). The reason stays in
        :attr:`last_error` for ``/readyz``.
        """
        s = self.settings
        while not self._stop.is_set():
            try:
                await self._connect_and_login()
            except AmiAuthError as exc:
                self._failed(str(exc), logging.ERROR)
                delay = self._delay(auth=True)
            except (OSError, TimeoutError, AmiNotConnected) as exc:
                reason = str(exc) or type(exc).__name__
                self._failed(f"cannot connect to AMI {s.host}:{s.port}: {reason}", logging.WARNING)
                delay = self._delay()
            else:
                if self._stop.is_set():
                    break
                await self._session()
                delay = self._delay()
            if not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    pass
        self._close_transport()

    async def close(self) -> None:
        """Log off (briefly) and stop :meth:`run`."""
        if self._stop.is_set():
            return
        if self.connected:
            try:
                await asyncio.wait_for(self._manager.send_action({"Action": "Logoff"}), 1.0)
            except Exception:  # closing anyway: the answer to Logoff does not matter
                pass
        self._stop.set()
        self._close_transport()

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until logged in and resynced (tests, and callers that need an answer from Asterisk)."""
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    async def send_action(self, action: Mapping[str, str | list[str]], timeout_s: float = 30.0, *,
                          response_only: bool = False) -> list[Headers] | Headers:
        """Send an action; its response (or the list of response + events for list actions) as plain dicts.

        ``response_only``: the first Response only, never a list (events answering it go to the listeners).
        """
        if not self.connected:
            raise AmiNotConnected(f"AMI {self.name} is not connected")
        act: dict[str, Any] = dict(action)
        if str(act.get("Action", "")).lower() == "originate" and not any(k.lower() == "async" for k in act):
            # panoramisk reads action['async'] (KeyError) when it sees "successfully queued"; false is the default.
            act["Async"] = "false"
        # An Async Originate's answer is a list (the Response, then its OriginateResponse event when the callee
        # answers or not); response_only takes the Response alone, and the event then goes to on_event listeners.
        as_list = False if response_only else None
        result = await asyncio.wait_for(self._manager.send_action(act, as_list=as_list), timeout_s)
        if isinstance(result, list):
            return [_headers(m) for m in result]
        return _headers(result)

    def on_event(self, name: str, callback: Callable[[Headers], None]) -> None:
        """Also hand events named ``name`` (e.g. OriginateResponse) to a plain, synchronous callback."""
        self._listeners[name].append(callback)

    # -- internals -------------------------------------------------------------------------------------

    async def _connect_and_login(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._lost_event.clear()
        self._attempts += 1
        _, proto = await asyncio.wait_for(loop.create_connection(
            lambda: _Protocol(self._manager, self._on_event, self._resync.route), s.host, s.port), s.connect_timeout_s)
        self._proto = proto
        if proto.is_closed:  # dropped before we could even log in (e.g. not an AMI server: see _banner_ok)
            raise AmiNotConnected(proto.refused or "connection closed before the Login")
        m = self._manager
        m.loop, m.protocol, m.tap = loop, proto, self.tap
        m.responses = proto.responses
        try:
            resp = await asyncio.wait_for(m.send_action(
                {"Action": "Login", "Username": s.username, "Secret": s.secret, "Events": "on"}), s.connect_timeout_s)
        except BaseException:
            self._close_transport()
            raise
        if not resp.success:
            self._close_transport()
            raise AmiAuthError(s.host, s.port, s.username, str(resp.get("Message") or resp.get("Response")))

    async def _session(self) -> None:
        """From a successful Login until the connection is lost (or we are closed)."""
        s = self.settings
        now = self._clock()
        self.connected = True
        self.last_error = ""
        if self._ever_up:
            self.reconnects += 1
            log.info("AMI %s: reconnected to %s:%d after %.1f s (%d attempts)", self.name, s.host, s.port,
                        now - (self._down_since or now), self._attempts)
        else:
            log.info("AMI %s: logged in to %s:%d as %s", self.name, s.host, s.port, s.username)
        self._ever_up = True
        self._attempts = 0
        self._logged_error = ""
        self._down_since = None
        ping = asyncio.create_task(self._ping_loop(), name=f"ami-ping-{self.name}")
        try:
            await self._resync.run(self._write, self._lost_event)
            if self._resync.synced:
                self._ready.set()
            if not self._lost_event.is_set():
                stop = asyncio.create_task(self._stop.wait())
                lost = asyncio.create_task(self._lost_event.wait())
                await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                lost.cancel()
        except AmiNotConnected:
            pass  # lost during resync: the next login resyncs again (resync_begin resets the collection)
        finally:
            ping.cancel()
            self._ready.clear()
            self.connected = False
            self._close_transport()
        if not self._stop.is_set():
            now = self._clock()
            self._down_since = now
            self.ingest.connection_lost(now)
            self.last_error = f"connection to AMI {s.host}:{s.port} lost"
            log.warning("AMI %s: connection to %s:%d lost; reconnecting with backoff", self.name, s.host, s.port)

    def _write(self, data: bytes) -> None:
        """Send raw bytes on the current connection (the resync's own list actions)."""
        proto = self._proto
        if proto is None or proto.is_closed:
            raise AmiNotConnected(f"AMI {self.name} is not connected")
        proto.transport.write(data)

    async def _ping_loop(self) -> None:
        interval = self.settings.ping_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self._manager.send_action({"Action": "Ping"}),
                                       min(interval, self.settings.connect_timeout_s))
            except TimeoutError:
                log.warning("AMI %s: no answer to Ping; dropping the connection", self.name)
                self._close_transport()
                return
            except AmiNotConnected:
                return

    def _on_event(self, headers: Headers) -> None:
        """Every event not answering an action: normalise + track synchronously, never await; then listeners."""
        event = headers.get("Event")
        if self._resync.collecting and event in LIST_ANSWERS and "ActionID" in headers:
            # A list answer to an action that is not our resync (a replayed capture holds the capturing session's
            # own QueueStatus): while ours is being collected it would be taken for ours — a stale, partial list
            # that removes members Asterisk still has. Asterisk sends each session only its own answers.
            self.ingest.skip(f"foreign_answer:{event}")
            return
        self._feed(headers)
        if event == "FullyBooted":
            self._resync.fully_booted()
        for callback in self._listeners.get(event, ()) if isinstance(event, str) else ():
            try:
                callback(headers)
            except Exception:  # a listener bug must never break the read path
                log.exception("AMI %s: %s listener failed", self.name, event)

    def _garbage(self, unparseable: int, oversized: int) -> None:
        if unparseable:
            self.ingest.skip(SkipReason.UNPARSEABLE, unparseable)
        if oversized:
            self.ingest.skip(SkipReason.OVERSIZED, oversized)

    def _feed(self, headers: Headers) -> None:
        now = self._clock()
        self.last_event_at = now
        self.ingest.feed(headers, now)

    def _lost(self, proto: _Protocol, exc: Exception | None) -> None:
        if proto is self._proto:
            self._resync.session_ended(AmiNotConnected(f"connection to AMI {self.name} lost during the resync"))
            self._lost_event.set()

    def _close_transport(self) -> None:
        if self._proto is not None and not self._proto.is_closed:
            self._proto.close()

    def _failed(self, message: str, level: int) -> None:
        self.last_error = message
        if self._down_since is None:
            self._down_since = self._clock()
        if message != self._logged_error:  # once per distinct reason, not per attempt
            self._logged_error = message
            # After a loss, "lost; reconnecting" was the one line; plain connect failures then stay at DEBUG
            # (the reason is in last_error for /readyz). A refused Login is always worth its own line.
            if self._ever_up and level < logging.ERROR:
                level = logging.DEBUG
            log.log(level, "AMI %s: %s; retrying with backoff", self.name, message)

    def _delay(self, auth: bool = False) -> float:
        s = self.settings
        base = s.backoff_max_s if auth else min(s.backoff_max_s, s.backoff_initial_s * 2 ** max(0, self._attempts))
        return base * (0.5 + 0.5 * self._rng())  # "equal jitter": spread out, never below half the step
