"""A ``Newexten`` read from its raw bytes only as far as the tracker's decision needs (:mod:`monitor.core.preread`).

Matching Asterisk's whole layout once costs about a third of the subset parse (docs/performance.md, "Newexten,
pre-read"); a per-key ``find``/``count`` version of the same checks cost as much as the parse.
"""

from __future__ import annotations

import re

from monitor.core.preread import LAYOUT, ParseHeaders, PreRead

# A value the decision reads: no CR or LF in it (the line parser would split there: a LF is ruled out by counting
# them, [^\r] scanning at about twice the speed of [^\r\n]), not ending in a byte that could be (part of) whitespace
# the line parser's rstrip() removes (ASCII whitespace, \x1c-\x1f, any non-ASCII byte).
_V = rb"((?:[^\r]*+(?<![\s\x1c-\x1f\x80-\xff]))?)\r\n"
_O = rb"[^\r]*+\r\n"  # a value it does not read
_READ = ("Timestamp", "Channel", "CallerIDNum", "CallerIDName", "Uniqueid", "Application")  # in LAYOUT order
#: A ``Newexten`` exactly as Asterisk formats one (:data:`LAYOUT`): every line, in order, each key once. A message
#: that matches all of it has no other line whose key could repeat or shadow one of the values read; anything else
#: is parsed as before.
_NEWEXTEN = re.compile(b"Event: Newexten\r\n" + b"".join(
    k.encode() + b": " + (_V if k in _READ else _O) for k in LAYOUT[1:-1]) + b"AppData: [^\r]*+")
_FEEDS = len(LAYOUT) - 1  # line feeds in a match without a LF inside a value


def pre_read(raw: bytes, pattern: re.Pattern[str], parse: ParseHeaders) -> PreRead | None:
    """One raw ``Newexten`` (no terminator) as a :class:`PreRead` parsed later by ``parse(raw, pattern)``, or None
    if anything is unusual (then it is parsed and fed as before).

    Each value is read exactly as the line parser reads it: the message is Asterisk's own layout, line for line
    (:data:`_NEWEXTEN`), the values decoded as it decodes them (a value ends at an ASCII byte, so decoding it
    alone gives what decoding the message gives), none with trailing whitespace (the line parser would strip
    it), a non-empty Uniqueid (else the normaliser counts a skip) and a Timestamp ``float()`` reads (qmon
    replay's clock reads any such string, as ``wire._clock``).
    """
    m = _NEWEXTEN.fullmatch(raw)
    if m is None or raw.count(b"\n") != _FEEDS:
        return None
    ts, channel, num, name, uid, app = m.groups()
    if not uid:
        return None
    try:
        clock = float(ts)
    except ValueError:
        return None
    return PreRead(uid.decode("utf-8", "replace"), app.decode("utf-8", "replace"), channel.decode("utf-8", "replace"),
                   num.decode("utf-8", "replace"), name.decode("utf-8", "replace"), clock, raw, pattern, parse)
