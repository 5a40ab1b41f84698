"""The AMI wire format: an incremental, pure parser and an encoder.

Asterisk sends ``Key: Value`` lines ended by CRLF, one blank line between messages, after a one-line
banner (``Asterisk Call Manager/11.0.0``). The parser accepts any chunking of the byte stream (a message
may arrive split anywhere, even inside a CRLF) and bare LF line ends.

Speed (see docs/performance.md): framing is one ``bytes.split`` per chunk when the chunk has CRLF framing only;
a well-formed message is parsed by ``str.split`` + ``dict`` and checked with two C-level scans, falling back to
the line-by-line parser (the reference semantics) on anything unusual. With a :class:`Selection`, events the
consumer has no use for are recognised from their first line (and, for ``VarSet``, the ``Variable`` line) and
counted in :attr:`WireParser.dropped_events` without being decoded or parsed (once their first lines are known,
without a trip through the interpreter: :mod:`monitor.ami.bulk`), and a kept event may be parsed for the headers
its consumer reads only (by Asterisk's own layout of it once learnt: :mod:`monitor.ami.subset`); a ``Newexten``
may be handed over pre-read (:mod:`monitor.ami.preread`). ``WireParser(fast=False)`` is the reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import filterfalse, repeat

from monitor.ami.bulk import BulkDrop
from monitor.ami.preread import pre_read
from monitor.ami.subset import BAD_VALUE_END, Layouts, add_header, parse_subset, subset_pattern
from monitor.core.preread import PREREAD_EVENT

Headers = dict[str, str | list[str]]

#: A message larger than this is garbage (or an attack): it is dropped and counted, never buffered forever.
MAX_MESSAGE_BYTES = 1 << 20
#: Every AMI message has one of these (events, responses, and the actions a server reads); a block without any is
#: not AMI (random bytes, lines without a colon).
_AMI_KEYS = frozenset({"Event", "Response", "ActionID", "Action"})

_SEP = b"\r\n\r\n"
_LF_LF = re.compile(b"\n\n")
_BAD_KEYS = re.compile(r"[\s:]")  # a key the reference parser would strip, split differently or reject
#: Past this many dropped messages in a row the gap keeps only its last time-stamped one (bounded memory).
_GAP_MAX = 64


KEEP, DROP, VARSET, SUBSET, DEFER = 0, 1, 2, 3, 4
#: Bound of the per-parser caches of first lines and VarSet variable names (garbage must not grow them).
_CACHE_MAX = 1024


class Selection:
    """The events a consumer uses; every other event is counted, never parsed.

    ``events``: event names kept (``Event:`` value as Asterisk spells it). ``varset_variables``: if given, a
    ``VarSet`` is kept only when ``Variable.lstrip('_').upper()`` is one of them. ``gap_clock``: remember, for
    each kept message without a usable ``Timestamp``, the last ``Timestamp`` among the messages dropped just
    before it (``qmon replay`` derives its clock from every message; see :attr:`WireParser.gap_clocks`).
    Responses (no ``Event`` first line), events carrying an ``ActionID`` (answers to our own actions) and
    anything not plainly recognisable are always kept: keeping too much is only slower, never wrong.
    ``headers``: event name -> the header names its consumer reads; such an event is parsed for those only,
    with the line parser's exact semantics for each (repeated keys as lists). Other kept messages are parsed whole.
    ``defer``: with ``headers`` for it, a plainly formed ``Newexten`` (:data:`PREREAD_EVENT`) is handed over as a
    :class:`~monitor.core.preread.PreRead` (the consumer decides, in stream order, whether to parse it).
    """

    __slots__ = ("_defer", "_names", "_patterns", "events", "gap_clock", "headers", "varset_variables")

    def __init__(self, events: Iterable[str], varset_variables: Iterable[str] | None = None,
                 gap_clock: bool = False, headers: Mapping[str, Iterable[str]] | None = None,
                 defer: bool = False) -> None:
        self.events = frozenset(events)
        self.varset_variables = frozenset(varset_variables) if varset_variables is not None else None
        self.gap_clock = gap_clock
        self.headers = {e: frozenset(h) for e, h in (headers or {}).items() if e in self.events}
        self._names = frozenset(e.encode() for e in self.events)
        self._patterns = {e.encode(): subset_pattern(h) for e, h in self.headers.items() if h}
        self._defer = PREREAD_EVENT.encode() if defer and PREREAD_EVENT.encode() in self._patterns else None

    def pattern(self, first_line: bytes) -> re.Pattern[str] | None:
        """The header-subset regex for a message starting with this line, None = parse it whole."""
        return self._patterns.get(first_line[7:]) if first_line.startswith(b"Event: ") else None

    def keeps(self, message: bytes) -> bool:
        """False if ``message`` (one raw message, CRLF lines, no terminator) is an event outside the selection."""
        nl = message.find(b"\r\n")
        kind = self.classify(message[:nl] if nl >= 0 else message)
        if kind == DROP:
            return b"ActionID" in message
        return kind != VARSET or not self.other_variable(message)

    def classify(self, first_line: bytes) -> int:
        """KEEP (parse whole), SUBSET (parse its headers), DROP (unless it carries an ActionID) or VARSET (look at
        the variable) from a message's first line."""
        if not first_line.startswith(b"Event: "):
            return KEEP
        name = first_line[7:]
        if name in self._names:
            if name == b"VarSet" and self.varset_variables is not None:
                return VARSET
            if name == self._defer:
                return DEFER
            return SUBSET if name in self._patterns else KEEP
        # Only plain names are decided here: anything else is parsed and left to the consumer.
        return DROP if name.isalnum() else KEEP

    def other_variable(self, message: bytes) -> bool:
        """True if this VarSet sets exactly one ``Variable`` and it is not one of ``varset_variables``."""
        name = _variable(message)
        return name is not None and self.untracked_variable(name)

    def untracked_variable(self, raw: bytes) -> bool:
        """True if the raw ``Variable`` value names none of ``varset_variables`` (as the normaliser reads it)."""
        if self.varset_variables is None or not raw.isascii() or b"\n" in raw:
            return False
        return raw.decode().rstrip().lstrip("_").upper() not in self.varset_variables


def _variable(message: bytes) -> bytes | None:
    """The raw value of the one ``Variable`` line of a message; None if absent or possibly repeated."""
    i = message.find(b"\r\nVariable: ")
    if i < 0 or message.count(b"Variable") != 1:
        return None  # no such header, or a lookalike: let the full parse and the normaliser decide
    j = message.find(b"\r\n", i + 12)
    return message[i + 12:] if j < 0 else message[i + 12:j]


class WireParser:
    """Turns AMI bytes into header dicts; duplicate keys become lists, as in the ``.jsonl`` captures."""

    def __init__(self, expect_banner: bool = True, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 select: Selection | None = None, fast: bool = True) -> None:
        self._buf = bytearray()
        self._expect_banner = expect_banner
        self._max = max_message_bytes
        self._select = select
        self._gap: list[bytes] = []
        self._heads: dict[bytes, int] = {}
        self._patterns: dict[bytes, re.Pattern[str] | None] = {}
        self._variables: dict[bytes, bool] = {}
        #: False: the decision loop and the generic subset parse only, the reference the fast paths (bulk drop,
        #: learnt layouts) are tested against.
        self.fast = fast
        self._bulk = BulkDrop()
        self._layouts = Layouts(select.headers if select is not None and fast else {})
        self.banner: str | None = None
        self.oversized = 0
        #: Lines the line parser could not read (messages parsed whole only: a dropped or subset-parsed event
        #: is never looked at line by line).
        self.bad_lines = 0
        self.unparseable = 0  # blocks that are not AMI messages (still returned: the caller decides)
        #: Events left out by the selection (counted, never parsed); cumulative.
        self.dropped_events = 0
        #: With ``Selection(gap_clock=True)``: one entry per message returned by the last :meth:`feed`, the
        #: ``Timestamp`` (float) of the last dropped message before it when it has no usable one itself, else None.
        self.gap_clocks: list[float | None] = []

    def reselect(self, select: Selection | None) -> None:
        """Use ``select`` from the next message on (the per-first-line decisions of the old one are forgotten)."""
        self._select = select
        self._heads.clear()
        self._patterns.clear()
        self._variables.clear()
        self._bulk = BulkDrop()
        self._layouts = Layouts(select.headers if select is not None and self.fast else {})

    def feed(self, data: bytes) -> list[Headers]:
        """Add bytes; return every message completed by them (those the selection keeps), in order."""
        buf = self._buf
        self.gap_clocks = []
        if b"\n" not in data:  # no line end: nothing can have completed
            buf += data
            self._check_size()
            return []
        whole = bytes(buf) + data if buf else bytes(data)
        buf.clear()
        if self._expect_banner and self.banner is None:
            nl = whole.find(b"\n")
            self.banner = whole[:nl].decode("utf-8", "replace").strip()
            whole = whole[nl + 1:]
        if _LF_LF.search(whole) is not None:  # ``b"\n\n" in whole``, in a third less time (SRE's prefix scan)
            raws, rest = _frame_mixed(whole)
        else:
            raws = whole.split(_SEP)
            rest = raws.pop()
        buf += rest
        self._check_size()
        return self._messages(raws)

    def _check_size(self) -> None:
        if len(self._buf) > self._max:
            # No message boundary within the limit: drop what we have, keep reading.
            self.oversized += 1
            self._buf.clear()

    def _messages(self, raws: list[bytes]) -> list[Headers]:
        sel = self._select
        if sel is None:
            return [msg for msg in map(self._parse_fast, raws) if msg and self._ami(msg)]
        drop = self._bulk.pattern
        before = self.dropped_events
        if drop is None:
            out = self._select_loop(raws, sel)
            missed = self.dropped_events - before
        elif sel.gap_clock:  # qmon replay: the dropped messages make the gap, in order
            matched = list(map(drop.match, raws))
            out = self._select_loop(raws, sel, matched)
            missed = self.dropped_events - before - (len(raws) - matched.count(None))
        else:
            kept = list(filterfalse(drop.match, raws))
            out = self._select_loop(kept, sel)
            missed = self.dropped_events - before
            self.dropped_events += len(raws) - len(kept)
        heads, variables = self._heads, self._variables
        if self.fast and self._bulk.due(missed, (len(heads), len(variables))):
            # Only what the loop has cached: a first line it has not seen must go through it, to be cached as it
            # caches it (the variable cache only saves time).
            self._bulk.build([h[7:] for h, kind in heads.items() if kind == DROP],
                             [v for v, untracked in variables.items() if untracked]
                             if heads.get(b"Event: VarSet") == VARSET else None)
        return out

    def _select_loop(self, raws: list[bytes], sel: Selection, dropping: list[re.Match[bytes] | None] | None = None,
                     ) -> list[Headers]:
        """The decision loop (the reference semantics); ``dropping``: per message, not None if the bulk drop
        pattern matched it (then it is dropped as the loop would drop it, without a look)."""
        out: list[Headers] = []
        clocks: list[float | None] = []
        self.gap_clocks = clocks
        gap, gap_clock, dropped = self._gap, sel.gap_clock, 0
        heads, variables, patterns, layouts = self._heads, self._variables, self._patterns, self._layouts
        for raw, bulk in zip(raws, repeat(None) if dropping is None else dropping, strict=False):
            if bulk is not None:  # the bulk pattern matched: dropped as the loop below would drop it, unread
                drop = True
            else:
                # The hot loop (most of the stream is dropped here): decisions cached per distinct first line and
                # per distinct VarSet variable, so a dropped message costs a few C-level scans.
                nl = raw.find(b"\r\n")
                head = raw[:nl] if nl >= 0 else raw
                kind = heads.get(head)
                if kind is None:
                    kind = sel.classify(head)
                    if len(heads) < _CACHE_MAX:
                        heads[head] = kind
                        patterns[head] = sel.pattern(head)
                if kind == DROP:
                    drop = b"ActionID" not in raw
                elif kind == VARSET:
                    # _variable(), inlined: this branch runs for about half of a typical stream.
                    i = raw.find(b"\r\nVariable: ")
                    if i < 0 or raw.count(b"Variable") != 1:
                        drop = False
                    else:
                        j = raw.find(b"\r\n", i + 12)
                        name = raw[i + 12:] if j < 0 else raw[i + 12:j]
                        cached = variables.get(name)
                        if cached is None:
                            cached = sel.untracked_variable(name)
                            if len(variables) < _CACHE_MAX:
                                variables[name] = cached
                        drop = cached
                elif kind == DEFER and b"ActionID" not in raw:
                    subset = patterns.get(head)  # DEFER: the selection has one (unless past the cache bound)
                    pre = pre_read(raw, subset, parse_subset) if subset is not None else None
                    if pre is not None:  # no gap clock: it has a Timestamp of its own, which the consumer reads
                        # Only a ``defer`` selection hands these over; its consumers (Ingest.feed, qmon replay, the
                        # live protocol) take them.
                        out.append(pre)  # type: ignore[arg-type]
                        if gap_clock:
                            clocks.append(None)
                            gap.clear()
                        continue
                    drop = False
                else:
                    drop = False
            if drop:
                dropped += 1
                if gap_clock:
                    gap.append(raw)
                    if len(gap) > _GAP_MAX:
                        gap[:] = self._last_stamped(gap)
                continue
            pattern = patterns.get(head) if kind != KEEP else None
            if pattern is not None and b"ActionID" not in raw:
                msg = layouts.parse(raw, head) or parse_subset(raw, pattern)
            else:
                msg = self._parse_fast(raw)
            if not msg or (pattern is None and not self._ami(msg)):
                continue
            out.append(msg)
            if gap_clock:
                clocks.append(self._gap_clock(msg) if gap else None)
                gap.clear()
        self.dropped_events += dropped
        return out

    def _ami(self, msg: Headers) -> bool:
        """Always True (the message is still returned: the caller decides); a block that is not an AMI message
        is counted in :attr:`unparseable`."""
        if msg.keys().isdisjoint(_AMI_KEYS) or msg.get("Event") == "":
            self.unparseable += 1
        return True

    def _last_stamped(self, gap: list[bytes]) -> list[bytes]:
        for raw in reversed(gap):
            if _clock(self._parse(raw)) is not None:
                return [raw]
        return []

    def _gap_clock(self, msg: Headers) -> float | None:
        if _clock(msg) is not None:
            return None
        last = self._last_stamped(self._gap)
        return _clock(self._parse(last[0])) if last else None

    def _parse_fast(self, raw: bytes) -> Headers:
        """:meth:`_parse`, for the common well-formed message in a few C-level passes (same result, always)."""
        text = raw.decode("utf-8", "replace")
        lines = text.split("\r\n")
        if text.count("\n") == len(lines) - 1:  # no bare LF inside
            try:
                flat: dict[str, str] = dict([ln.split(": ", 1) for ln in lines])
            except ValueError:  # a line without ": " (empty, garbage, or "Key:" with nothing after)
                pass
            else:
                if (len(flat) == len(lines) and "" not in flat and not _BAD_KEYS.search("\x00".join(flat))
                        and not BAD_VALUE_END.search("\x00".join(flat.values()))):
                    return flat  # type: ignore[return-value]  # dict is invariant; no list values here
        return self._parse(raw)

    def _parse(self, raw: bytes) -> Headers:
        msg: Headers = {}
        text = raw.decode("utf-8", "replace")
        for line in text.split("\n"):
            line = line.rstrip("\r")
            if not line:
                continue
            key, colon, value = line.partition(":")
            if not colon or not key or " " in key.strip():
                self.bad_lines += 1
                lines = msg.setdefault("_lines", [])
                if isinstance(lines, list):
                    lines.append(line)
                continue
            value = value[1:] if value.startswith(" ") else value
            add_header(msg, key.strip(), value.rstrip())
        return msg


def _frame_mixed(buf: bytes) -> tuple[list[bytes], bytes]:
    """Split on CRLF CRLF or LF LF, whichever comes first (bare-LF peers); the unterminated rest."""
    out: list[bytes] = []
    pos = 0
    # Each terminator is searched for once and remembered: a multi-megabyte chunk stays linear.
    crlf = lf = -2
    while True:
        if -1 < crlf < pos or crlf == -2:
            crlf = buf.find(_SEP, pos)
        if -1 < lf < pos or lf == -2:
            lf = buf.find(b"\n\n", pos)
        if crlf < 0 and lf < 0:
            break
        if lf < 0 or (0 <= crlf < lf):
            end, nxt = crlf, crlf + 4
        else:
            end, nxt = lf, lf + 2
        out.append(buf[pos:end])
        pos = nxt
    return out, buf[pos:]


def _clock(msg: Headers) -> float | None:
    """The message's ``Timestamp`` as ``qmon replay`` reads it (any float() string), else None."""
    ts = msg.get("Timestamp")
    if isinstance(ts, str):
        try:
            return float(ts)
        except ValueError:
            return None
    return None


def encode(headers: Mapping[str, str | list[str] | int | float] | Iterable[tuple[str, str]]) -> bytes:
    """Encode one message (an action or an event) in AMI wire format, ending with the blank line."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines: list[str] = []
    for key, value in items:
        if key.startswith("_"):
            continue
        if isinstance(value, list):
            lines.extend(f"{key}: {v}" for v in value)
        else:
            lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def first(value: str | list[str] | None) -> str | None:
    """The first value of a header that may have been repeated."""
    if isinstance(value, list):
        return value[0] if value else None
    return value
