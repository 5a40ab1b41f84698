"""The messages a tracker selection drops, recognised by one regex per message in C (docs/performance.md, "Bulk drop").

Two thirds of a call center's stream are dropped by the wire parser's decision loop
(:meth:`monitor.ami.wire.WireParser._select_loop`), each for about 0.7 µs of interpreter time. :func:`drop_pattern`
compiles one regex that matches, from its start, only a message that loop would drop *changing nothing but the
drop count*: its first line is one the loop has already cached as dropped (so the loop would not add it to its
bounded cache either) and it holds no ``ActionID``, or it is a ``VarSet`` of one variable the loop has found
untracked. The parser applies it to a chunk's messages with ``itertools.filterfalse`` (no interpreter loop);
whatever it does not match goes through the loop as before, so the regex only has to be sure, never complete.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Past this many dropped event names or variable names (garbage streams) the pattern is no longer rebuilt.
MAX_NAMES = 256
#: Messages the loop must have dropped (its caches grown meanwhile) before the pattern is rebuilt: a compile costs
#: about 1 ms, a message the loop drops about 1 µs. At most MAX_BUILDS builds per parser (a stream of ever new
#: event names, or a bad peer, must not make it compile all the time).
REBUILD_AFTER = 16
MAX_BUILDS = 32
_PLAIN_VARIABLE = re.compile(rb"\w+")


def drop_pattern(events: Iterable[bytes], variables: Iterable[bytes] | None) -> re.Pattern[bytes] | None:
    """A pattern whose ``match`` is not None only for a message the selection's loop drops, or None if none can be.

    ``events``: event names whose ``Event:`` line the loop drops unless the message holds ``ActionID`` anywhere.
    ``variables``: if not None, ``VarSet`` is decided by its variable, and these are raw ``Variable`` values the
    loop found untracked: such a VarSet is dropped when the message has exactly one ``Variable`` (at a line start,
    followed by ``: ``, the value one of these up to the line end). Anything else (a ``V`` before that line,
    ``Variable`` again after it, a value not seen yet) is left to the loop.
    """
    alts: list[bytes] = []
    plain = sorted(n for n in events if n.isalnum() and b"ActionID" not in n)
    if plain:
        # The first line is "Event: <name>" (ending there), and no ActionID follows (possessive: linear).
        alts.append(b"(?:" + b"|".join(map(re.escape, plain)) + rb")(?:\r\n|\Z)(?:[^A]++|A(?!ctionID))*+\Z")
    names = sorted(n for n in variables or () if _PLAIN_VARIABLE.fullmatch(n) and b"Variable" not in n)
    if names:
        # [^V]*+ runs to the first V after the first line: it must start the one Variable line (so it is the first
        # "\r\nVariable: " the loop finds, and the first "Variable"), and no "Variable" may follow.
        alts.append(rb"VarSet\r\n[^V]*+(?<=\r\n)Variable: (?:" + b"|".join(map(re.escape, names))
                    + rb")(?:\r\n|\Z)(?:[^V]++|V(?!ariable))*+\Z")
    if not alts:
        return None
    return re.compile(rb"Event: (?:" + b"|".join(alts) + b")")


class BulkDrop:
    """One parser's bulk drop pattern, rebuilt when its loop has dropped enough messages with grown caches."""

    __slots__ = ("_builds", "_built", "_missed", "pattern")

    def __init__(self) -> None:
        self.pattern: re.Pattern[bytes] | None = None
        self._built = (-1, -1)
        self._builds = 0
        self._missed = 0

    def due(self, missed: int, sizes: tuple[int, int]) -> bool:
        """Count ``missed`` (messages the loop dropped); True if the pattern should be rebuilt now (the loop's
        first-line and variable caches, of ``sizes``, have grown since the last build)."""
        self._missed += missed
        if self._missed < REBUILD_AFTER or sizes == self._built or self._builds >= MAX_BUILDS:
            return False
        self._missed = 0
        self._built = sizes
        self._builds += 1
        return True

    def build(self, events: list[bytes], variables: list[bytes] | None) -> None:
        """Rebuild from what the loop has cached as dropped (see :func:`drop_pattern`), unless that is garbage."""
        if len(events) <= MAX_NAMES and (variables is None or len(variables) <= MAX_NAMES):
            self.pattern = drop_pattern(events, variables)
