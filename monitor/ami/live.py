"""The live AMI source: panoramisk ``Manager`` + our wire parser, reconnect with backoff, resync, fed synchronously.

panoramisk is used for what it does well (Action IDs, responses into futures), with workarounds for traps in its
1.4 source: **framing/parsing** is :class:`monitor.ami.wire.WireParser` (panoramisk decodes each TCP read alone
with ``errors='ignore'``, strips a last empty header, never bounds its buffer); **reconnect** is ours
(``Manager.connection_lost`` retries every 2 s without backoff and re-sends pending actions: an ``Originate``
could ring a customer twice) — a lost connection fails pending actions with :class:`AmiNotConnected` and
:meth:`AmiSource.run` reconnects with capped exponential backoff + jitter, then resyncs
(:mod:`monitor.ami.resync`, retried until Asterisk answers); **keepalive** is ours (panoramisk's pinger never
checks for an answer): each ``Ping`` is awaited with a timeout and the connection dropped without one. A peer
that sends no Asterisk banner line within ``MAX_BANNER_BYTES`` is dropped at once. The panoramisk subclasses
(framing, banner check, routing of answers) are :mod:`monitor.ami.protocol`.

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
from typing import Any

from monitor.ami.protocol import AmiManager, AmiNotConnected, AmiWireProtocol, headers_of
from monitor.ami.resync import LIST_ANSWERS, Resyncer
from monitor.ami.selection import DAEMON_EVENTS
from monitor.ami.wire import Headers
from monitor.core.ingest import Ingest
from monitor.core.preread import PreRead
from monitor.core.vocab import SkipReason
from monitor.settings import AmiSettings

log = logging.getLogger("qmon.ami")

__all__ = ["AmiAuthError", "AmiNotConnected", "AmiSource"]

class AmiAuthError(Exception):
    """Asterisk refused our Login (names the host and user, never the secret)."""

    def __init__(self, host: str, port: int, user: str, reason: str) -> None:
        super().__init__(f"AMI login as {user!r} on {host}:{port} refused: {reason}")
        self.host, self.port, self.user, self.reason = host, port, user, reason


class AmiSource:
    """One AMI connection feeding one :class:`Ingest`; :meth:`run` until :meth:`close`."""

    def __init__(self, settings: AmiSettings, ingest: Ingest, *, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.ingest = ingest
        self._clock = clock
        self._rng = rng
        self._manager = AmiManager(settings.name, self._lost)
        self._manager.on_garbage = self._garbage
        self._listeners: defaultdict[str, list[Callable[[Headers], None]]] = defaultdict(list)
        self._proto: AmiWireProtocol | None = None
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
            return [headers_of(m) for m in result]
        return headers_of(result)

    def on_event(self, name: str, callback: Callable[[Headers], None]) -> None:
        """Also hand events named ``name`` (e.g. OriginateResponse) to a plain, synchronous callback (from now on:
        the wire parser of the current connection starts keeping them)."""
        new = name not in self._listeners
        self._listeners[name].append(callback)
        if new and self._proto is not None and not self._proto.is_closed:
            self._proto.listen(self._listened())  # the parser would otherwise leave this event out unparsed

    def _listened(self) -> frozenset[str]:
        """Events the tracker does not read but the daemon or a listener does."""
        return DAEMON_EVENTS | frozenset(self._listeners)

    # -- internals -------------------------------------------------------------------------------------

    async def _connect_and_login(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._lost_event.clear()
        self._attempts += 1
        events = self._listened()
        _, proto = await asyncio.wait_for(loop.create_connection(
            lambda: AmiWireProtocol(self._manager, self._on_event, self._resync.route, self._on_dropped, events),
            s.host, s.port), s.connect_timeout_s)
        self._proto = proto
        if proto.is_closed:  # dropped before we could even log in (not an AMI server: AmiWireProtocol._banner_ok)
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

    def _on_event(self, headers: Headers | PreRead) -> None:
        """Every event not answering an action: normalise + track synchronously, never await; then listeners."""
        if isinstance(headers, PreRead):  # a Newexten nobody listens to (else it is not pre-read): Ingest decides
            self._feed(headers)
            return
        event = headers.get("Event")
        if self._resync.collecting and event in LIST_ANSWERS and "ActionID" in headers:
            # A list answer to an action that is not our resync (a replayed capture holds the capturing session's
            # own QueueStatus): while ours is being collected it would be taken for ours — a stale, partial list
            # that removes members Asterisk still has. Asterisk sends each session only its own answers.
            # Still an event received: counted like every other (qmon_ami_events covers the whole stream).
            self._on_dropped(1)
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

    def _on_dropped(self, n: int) -> None:
        """``n`` events nobody reads went by unparsed: they still count (the events counter covers the stream)."""
        now = self._clock()
        self.last_event_at = now
        self.ingest.count_unparsed(n, now)

    def _garbage(self, unparseable: int, oversized: int) -> None:
        if unparseable:
            self.ingest.skip(SkipReason.UNPARSEABLE, unparseable)
        if oversized:
            self.ingest.skip(SkipReason.OVERSIZED, oversized)

    def _feed(self, headers: Headers | PreRead) -> None:
        now = self._clock()
        self.last_event_at = now
        self.ingest.feed(headers, now)

    def _lost(self, proto: AmiWireProtocol, exc: Exception | None) -> None:
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
