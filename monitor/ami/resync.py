"""Resync after every login: ask Asterisk what is alive (``QueueStatus``, ``CoreShowChannels``) until it answers.

After ``core restart now`` the AMI is up before app_queue has loaded: ``QueueStatus`` then answers
``Response: Error`` / ``Message: Invalid/unknown command: QueueStatus...`` (seen live, 0.4 s after the loss). A
resync is done only when both lists arrived complete (``EventList: Complete``); until then it is retried — at
once when ``FullyBooted`` arrives (only users with the ``system`` read class ever get it: after one was seen on
this connection's user, the next resync first waits for it), else with capped exponential backoff + jitter —
and ``/readyz`` says "resyncing" with the reason.

The list answers are fed to :class:`~monitor.core.ingest.Ingest` on the read path, in wire order with the
events around them (so a member added right after the QueueStatus snapshot is not removed by it); a late answer
to an attempt given up on is dropped. Each attempt starts with a ``Ping``, whose ``Timestamp`` (manager.c,
action_ping), read before the lists, places their answers, which carry none, on the PBX clock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from monitor.ami.wire import Headers, encode, first
from monitor.core.ingest import Ingest
from monitor.settings import AmiSettings

log = logging.getLogger("qmon.ami")

#: ActionID prefix of resync list actions: their answers are ours, never panoramisk's.
RESYNC_PREFIX = "qmon-resync-"
#: Events that answer QueueStatus / CoreShowChannels (list entries and their end markers).
LIST_ANSWERS = frozenset({"QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete", "CoreShowChannel",
                          "CoreShowChannelsComplete"})
LIST_ACTIONS = ("QueueStatus", "CoreShowChannels")


class ResyncRefused(Exception):
    """Asterisk answered a resync action with an error (e.g. ``Invalid/unknown command`` while booting)."""


class ListAnswer:
    """The answer to one list action: its Response, then events until ``EventList: Complete``."""

    def __init__(self, action: str, feed: Callable[[Headers], None], done: Callable[[], None] | None = None) -> None:
        self.action = action
        self.feed = feed
        self.done = done  # run on the read path right after the last event: before any event that follows it
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def take(self, headers: Headers) -> None:
        """One message carrying this action's ActionID, in wire order."""
        if self.future.done():
            return
        if "Event" not in headers:
            if (first(headers.get("Response")) or "").lower() != "success":
                self.future.set_exception(ResyncRefused(f"{self.action}: {first(headers.get('Message')) or '?'}"))
            return
        self.feed(headers)
        if (first(headers.get("EventList")) or "").lower() == "complete":
            if self.done is not None:
                self.done()
            self.future.set_result(None)

    def fail(self, exc: Exception) -> None:
        """The connection is gone: whoever waits gets ``exc``."""
        if not self.future.done():
            self.future.set_exception(exc)
            self.future.exception()  # retrieved: the waiter may be gone already


class Resyncer:
    """Runs the resync of one AMI connection; :meth:`route` gets every message carrying a resync ActionID."""

    def __init__(self, settings: AmiSettings, ingest: Ingest, *, clock: Callable[[], float],
                 rng: Callable[[], float], feed: Callable[[Headers], None]) -> None:
        self.settings = settings
        self.ingest = ingest
        self._clock = clock
        self._rng = rng
        self._feed = feed
        self._ids = itertools.count(1)
        self._lists: dict[str, ListAnswer] = {}
        self._pings: set[str] = set()
        self.booted = asyncio.Event()  # FullyBooted seen on this connection
        self.has_system = False  # FullyBooted was ever seen: this user has the `system` read class
        self.synced = False
        self.error = ""  # why the last attempt failed ("" once synced)
        self.attempts = 0  # attempts of the current (or last) resync

    @property
    def collecting(self) -> bool:
        """A resync's list answers are being collected right now."""
        return bool(self._lists)

    def route(self, action_id: str, headers: Headers) -> None:
        """A message answering a resync action; answers to attempts given up on are dropped."""
        if action_id in self._pings:
            # On the read path, before the list answers that follow it: they are placed on the PBX clock by it.
            self._pings.discard(action_id)
            try:
                self.ingest.clock_sample(float(first(headers.get("Timestamp")) or ""), self._clock())
            except ValueError:
                pass  # no Timestamp (before Asterisk 12): the offset from the last event's Timestamp stays
            return
        answer = self._lists.get(action_id)
        if answer is not None:
            answer.take(headers)

    def fully_booted(self) -> None:
        """A ``FullyBooted`` event arrived."""
        self.has_system = True
        self.booted.set()

    def session_ended(self, exc: Exception) -> None:
        """The connection is gone: fail what waits, forget this session's boot state."""
        for answer in self._lists.values():
            answer.fail(exc)
        self._lists.clear()
        self._pings.clear()
        self.booted.clear()
        self.synced = False

    async def run(self, write: Callable[[bytes], None], lost: asyncio.Event) -> None:
        """Resync until it succeeds; raises AmiNotConnected (from ``write``/the answers) if the connection drops."""
        s = self.settings
        self.synced, self.attempts, self.error = False, 0, ""
        started = self._clock()
        if self.has_system and not self.booted.is_set():
            self.error = "waiting for FullyBooted"
            await _first_of(self.booted, lost, s.connect_timeout_s)
        logged = ""
        while not lost.is_set():
            self.attempts += 1
            self.booted.clear()  # a FullyBooted from now on means "Asterisk is up now: try again at once"
            try:
                await self._attempt(write)
            except (ResyncRefused, TimeoutError) as exc:
                self.error = str(exc) or f"no answer within {s.resync_timeout_s:g} s"
            else:
                self.synced, self.error = True, ""
                if self.attempts > 1:
                    log.info("AMI %s: resynced after %d attempts (%.1f s)", s.name, self.attempts,
                             self._clock() - started)
                return
            if self.error != logged:  # once per distinct reason, not per attempt
                logged = self.error
                log.warning("AMI %s: resync failed (%s); retrying until Asterisk answers", s.name, self.error)
            await _first_of(self.booted, lost, self._delay())

    async def _attempt(self, write: Callable[[bytes], None]) -> None:
        s = self.settings
        self.ingest.resync_begin()
        ping = f"{RESYNC_PREFIX}{next(self._ids)}"
        self._pings = {ping}  # Asterisk answers a session's actions in order: the Pong comes before the lists
        write(encode({"Action": "Ping", "ActionID": ping}))
        for action in LIST_ACTIONS:
            aid = f"{RESYNC_PREFIX}{next(self._ids)}"
            # The last list settles the tracker in wire order: a Hangup read right after it finds the call adopted.
            done = self._settle if action == LIST_ACTIONS[-1] else None
            answer = self._lists[aid] = ListAnswer(action, self._feed, done)
            try:
                write(encode({"Action": action, "ActionID": aid}))
                await asyncio.wait_for(asyncio.shield(answer.future), s.resync_timeout_s)
            finally:
                self._lists.pop(aid, None)

    def _settle(self) -> None:
        self.ingest.resync_end(self._clock())

    def _delay(self) -> float:
        s = self.settings
        base = min(s.backoff_max_s, s.backoff_initial_s * 2.0 ** max(0, self.attempts - 1))
        return base * (0.5 + 0.5 * self._rng())


async def _first_of(event: asyncio.Event, lost: asyncio.Event, timeout_s: float) -> None:
    """Wait until ``event`` or ``lost`` is set, at most ``timeout_s``."""
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(lost.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
