"""A ``Newexten`` read only as far as the tracker needs to decide whether it matters (parsed later, if at all).

``Newexten`` is about half of what the tracker reads, and most of them are dialplan steps of channels that are
no callers (agent legs, callers before ``Queue()``): for those the tracker only refreshes a channel state that
the event would leave unchanged, and moves its clock. Whether one matters depends on the tracker's state at that
point of the stream (a ``Queue`` Newexten just before makes the channel a caller), so the wire parser cannot
decide: it hands over a :class:`PreRead` and :meth:`monitor.core.ingest.Ingest.feed` decides in stream order
through :meth:`monitor.core.tracker.CallTracker.wants_dialplan` (docs/performance.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

#: The event handed over pre-read (the only one whose use depends on the channel's role).
PREREAD_EVENT = "Newexten"
#: Its header lines, in order, exactly as Asterisk 13 to 22 formats one (manager_channels.c: the channel snapshot,
#: then Extension, Application, AppData): only a message of exactly these lines is pre-read.
LAYOUT = ("Event", "Privilege", "Timestamp", "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum",
          "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context", "Exten",
          "Priority", "Uniqueid", "Linkedid", "Extension", "Application", "AppData")
_KEYS = frozenset(LAYOUT)
#: How the headers are parsed from the raw message when they are needed: ``parse(raw, pattern)``.
ParseHeaders = Callable[[bytes, re.Pattern[str]], Mapping[str, str | list[str]]]


class PreRead:
    """One plainly formed ``Newexten``: the header values the decision reads (each exactly once in the message, as
    the line parser reads them; ``timestamp`` as ``float()`` reads it, epoch s) and the raw message with the
    parser that gives its headers."""

    __slots__ = ("application", "caller_name", "caller_num", "channel", "parse", "pattern", "raw", "timestamp",
                 "uniqueid")

    def __init__(self, uniqueid: str, application: str, channel: str, caller_num: str, caller_name: str,
                 timestamp: float, raw: bytes, pattern: re.Pattern[str], parse: ParseHeaders) -> None:
        self.uniqueid = uniqueid
        self.application = application
        self.channel = channel
        self.caller_num = caller_num
        self.caller_name = caller_name
        self.timestamp = timestamp
        self.raw = raw
        self.pattern = pattern
        self.parse = parse

    def __contains__(self, key: object) -> bool:
        """Whether the message has this header (as for a header dict: code that wraps ``Ingest.feed`` asks)."""
        return key in _KEYS

    def headers(self) -> Mapping[str, str | list[str]]:
        """The headers the normaliser reads (what the wire parser would have handed over)."""
        return self.parse(self.raw, self.pattern)
