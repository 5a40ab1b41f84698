"""panoramisk's protocol and manager as qmon uses them: our wire framing, a banner check, answers routed to
panoramisk or the resync, events to the read path, and nothing re-sent or reconnected behind our back (the source,
:mod:`monitor.ami.live`, owns reconnect and keepalive).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from monitor.ami.resync import RESYNC_PREFIX
from monitor.ami.selection import tracker_selection
from monitor.ami.wire import Headers, WireParser
from monitor.core.preread import PreRead

log = logging.getLogger("qmon.ami")

#: Asterisk's banner is one short line ("Asterisk Call Manager/11.0.0", manager.c); a peer that sends more than
#: this before a line end, or another banner, is not an AMI server and is dropped at once (never buffered).
MAX_BANNER_BYTES = 1024


class AmiNotConnected(ConnectionError):
    """An action was sent while not logged in, or the connection dropped before its answer."""


def headers_of(msg: Message) -> Headers:
    """The plain header dict our parser built for a panoramisk Message (same shape as in replays)."""
    raw = getattr(msg, "qmon_headers", None)
    return cast(Headers, raw) if raw is not None else {str(k): v for k, v in msg.items()}


class AmiWireProtocol(AMIProtocol):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's AMIProtocol with wire.py framing and no re-queueing of actions on close."""

    def __init__(self, manager: AmiManager, on_event: Callable[[Headers | PreRead], None],
                 on_resync: Callable[[str, Headers], None], on_dropped: Callable[[int], None],
                 events: frozenset[str]) -> None:
        super().__init__()
        self._manager = manager
        self._on_event = on_event
        self._on_resync = on_resync
        self._on_dropped = on_dropped
        # Events outside the tracker's selection and ``events`` are counted, never parsed (docs/performance.md);
        # responses and events carrying an ActionID (answers to our actions, the resync's lists) are always kept
        # and parsed whole.
        # Newexten is handed over pre-read: Ingest.feed decides in stream order whether to parse it.
        self.parser = WireParser(expect_banner=True, select=tracker_selection(extra=events, defer=True))
        self.refused = ""  # why we dropped the peer (not an AMI server), for the login error
        self._head = b""  # the banner line so far (at most MAX_BANNER_BYTES)

    def listen(self, events: frozenset[str]) -> None:
        """Keep (parse and hand on) these events too, from the next message on."""
        self.parser.reselect(tracker_selection(extra=events, defer=True))

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
        parser = self.parser
        if parser.banner is None and not self._banner_ok(data):
            return
        garbage = parser.unparseable, parser.oversized
        dropped = parser.dropped_events
        messages = parser.feed(data)
        if (parser.unparseable, parser.oversized) != garbage:  # counted, logged once (Ingest.skip)
            self._manager.on_garbage(parser.unparseable - garbage[0], parser.oversized - garbage[1])
        for headers in cast("list[Headers | PreRead]", messages):  # PreRead: a defer selection's
            try:
                if isinstance(headers, PreRead):  # an event, never an answer (no ActionID): to the read path
                    self._on_event(headers)
                else:
                    self._route(headers)
            except Exception:  # one bad message (or a listener bug) must not kill the connection
                what = "Newexten" if isinstance(headers, PreRead) else headers.get("Event") or "response"
                log.exception("AMI %s: failed to handle %s", self._manager.name, what)
        if parser.dropped_events != dropped:
            self._on_dropped(parser.dropped_events - dropped)

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


class AmiManager(Manager):  # type: ignore[misc]  # panoramisk is untyped
    """A panoramisk Manager that never reconnects or re-sends by itself (AmiSource owns that)."""

    def __init__(self, name: str, on_lost: Callable[[AmiWireProtocol, Exception | None], None]) -> None:
        super().__init__(ping_delay=0, reconnect_timeout=0)
        self.name = name
        self._on_lost = on_lost
        self.tap: Callable[[bytes], None] | None = None
        self.bytes_received = 0
        #: (unparseable blocks, oversized messages) just dropped or passed over by the wire parser.
        self.on_garbage: Callable[[int, int], None] = lambda unparseable, oversized: None

    def protocol_lost(self, proto: AmiWireProtocol, exc: Exception | None) -> None:
        self.awaiting_actions.clear()
        self._on_lost(proto, exc)

    def connection_lost(self, exc: Exception | None) -> None:  # panoramisk's "Shutdown" event path
        self.awaiting_actions.clear()
