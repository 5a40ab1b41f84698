"""The header-subset parse: generic, and by Asterisk's own layout of an event, learnt from the stream.

The generic parse (:func:`parse_subset`) reads only the lines whose key is one of a set, each as the line parser
reads it (``WireParser._parse``, the reference). Asterisk formats each event with a fixed sequence of header lines
(per version and configuration): a ``Hangup`` is always the channel snapshot, then ``Cause`` and ``Cause-txt``.
Once a first line and line count have shown a plain layout often enough (every line ``Key: value``, each key
once), one compiled ``fullmatch`` of exactly that line sequence takes the values read as named groups, in about a
third of the generic parse's time (docs/performance.md, "Layouts"). A message in no learnt layout is parsed
generically, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

Headers = dict[str, str | list[str]]
BAD_VALUE_END = re.compile(r"\s(?:\x00|\Z)")  # a value the line parser would rstrip

#: Learnt layouts per parser (each costs a compile, ~1 ms); past this, new layouts are parsed generically.
MAX_LAYOUTS = 64
#: A layout is learnt when a first line and line count have missed this many times: a compile (~1 ms) pays for
#: itself after ~100 messages, so a layout seen a few times is never compiled (docs/performance.md).
LEARN_AFTER = 32
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
# A value read: no CR (a LF is ruled out by the line count), not ending in whitespace the line parser's rstrip()
# would remove (str \s, which is what str.rstrip() strips). A value not read: anything without CR.
_READ = r"(?:[^\r]*+(?<!\s))?"
_SKIP = r"[^\r]*+"


class Layouts:
    """The layouts learnt by one parser, by first line and number of line feeds."""

    __slots__ = ("_count", "_headers", "_layouts", "_misses")

    def __init__(self, headers: Mapping[str, frozenset[str]]) -> None:
        self._headers = headers  # event name -> the header names read (Selection.headers)
        self._layouts: dict[tuple[bytes, int], list[re.Pattern[str]]] = {}
        self._misses: dict[tuple[bytes, int], int] = {}
        self._count = 0

    def parse(self, raw: bytes, head: bytes) -> Headers | None:
        """The headers read of ``raw`` (an event the selection subset-parses, first line ``head``, no ActionID)
        exactly as the generic subset parse gives them, or None if ``raw`` is in no learnt layout (then the caller
        parses it generically)."""
        if not self._headers:  # nothing to learn (the reference parser, or no subset at all)
            return None
        text = raw.decode("utf-8", "replace")
        where = (head, text.count("\n"))
        for pattern in self._layouts.get(where, ()):
            m = pattern.fullmatch(text)
            if m is not None:
                return m.groupdict()  # every group takes part in a full match: all values are str
        if self._count >= MAX_LAYOUTS:
            return None
        misses = self._misses.get(where, 0) + 1
        if len(self._misses) >= 4 * MAX_LAYOUTS:  # garbage: first lines and line counts without end
            self._misses.clear()
        self._misses[where] = misses
        if misses < LEARN_AFTER:
            return None
        # Whether or not this one is plain, the next try is LEARN_AFTER misses away.
        del self._misses[where]
        keys = self._headers.get(head[7:].decode("utf-8", "replace"))
        learnt = _learn(text, where[1], keys) if keys else None
        known = self._layouts.get(where, [])
        if learnt is None or any(p.pattern == learnt.pattern for p in known):  # a value, not the layout, missed
            return None
        self._layouts[where] = [*known, learnt]
        self._count += 1
        m = learnt.fullmatch(text)
        return None if m is None else m.groupdict()


def _learn(text: str, feeds: int, keys: frozenset[str]) -> re.Pattern[str] | None:
    """The layout of ``text`` as a pattern, or None if it is not plain: CRLF line ends only (``feeds`` of them),
    every line ``Key: value`` with a plain key, no key twice, the keys read usable as group names."""
    lines = text.split("\r\n")
    if len(lines) != feeds + 1:
        return None
    names = [line.partition(": ") for line in lines]
    if any(not sep or not _PLAIN_KEY.fullmatch(key) for key, sep, _ in names):
        return None
    order = [key for key, _, _ in names]
    if len(set(order)) != len(order) or any(k in keys and not k.isidentifier() for k in order):
        return None
    # The first line ("Event: <name>") is literal; its value, if read, is that literal (so it must be one the
    # generic parse reads as it is: no CR, nothing to strip).
    first, _, name = names[0]
    if "\r" in name or name != name.rstrip():
        return None
    parts = [f"{re.escape(first)}: " + (f"(?P<{first}>{re.escape(name)})" if first in keys else re.escape(name))]
    parts += [f"{re.escape(k)}: " + (f"(?P<{k}>{_READ})" if k in keys else _SKIP) for k in order[1:]]
    return re.compile("\r\n".join(parts))


def add_header(msg: Headers, key: str, value: str) -> None:
    """One header into ``msg``; a repeated key keeps every value, in order, as a list (AMI repeats Variable:)."""
    old = msg.get(key)
    if old is None:
        msg[key] = value
    elif isinstance(old, list):
        old.append(value)
    else:
        msg[key] = [old, value]


def subset_pattern(headers: Iterable[str]) -> re.Pattern[str]:
    """A line whose key, stripped as the line parser strips it, is one of ``headers``: after any \\n (the text
    gets one in front), as the line parser splits; the value after one optional space."""
    alt = "|".join(re.escape(h) for h in sorted(headers, key=len, reverse=True))
    return re.compile(rf"\n[^\S\n]*({alt})[^\S\n]*:(?: )?([^\n]*)")


def parse_subset(raw: bytes, subset: re.Pattern[str]) -> Headers:
    """Only the headers ``subset`` names, each as the line parser would give it (see ``wire.Selection``)."""
    # CR LF -> LF first: the line parser drops that CR anyway, and values then rarely need an rstrip.
    pairs = subset.findall("\n" + raw.decode("utf-8", "replace").replace("\r\n", "\n"))
    flat: dict[str, str] = dict(pairs)
    if len(flat) == len(pairs) and not BAD_VALUE_END.search("\x00".join(flat.values())):
        return flat  # type: ignore[return-value]  # dict is invariant; no list values here
    msg: Headers = {}
    for key, value in pairs:
        add_header(msg, key, value.rstrip())
    return msg
