"""Repeat-caller index: the first-call-resolution proxy, bounded in memory."""

from __future__ import annotations

import re
from collections import OrderedDict

_WITHHELD = frozenset({
    "", "anonymous", "unknown", "<unknown>", "restricted", "withheld", "private", "unavailable", "none", "s",
})
_STRIP = re.compile(r"[\s\-().]")


def normalize_number(raw: str | None) -> str | None:
    """Digits with an optional leading ``+``; None for withheld/anonymous/unknown numbers."""
    if raw is None:
        return None
    s = _STRIP.sub("", raw.strip())
    if s.lower() in _WITHHELD:
        return None
    plus = s.startswith("+")
    digits = s[1:] if plus else s
    if not digits.isdigit():
        return None
    return ("+" if plus else "") + digits


def parse_window(text: str) -> float:
    """``24h``, ``48h``, ``7d``, ``30m``, ``90s`` or plain seconds -> seconds."""
    t = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if t and t[-1] in units:
            value = float(t[:-1]) * units[t[-1]]
        else:
            value = float(t)
    except ValueError:
        raise ValueError(f"bad window {text!r}: use e.g. 24h, 7d, 30m") from None
    if value <= 0:
        raise ValueError(f"bad window {text!r}: must be positive")
    return value


class RepeatIndex:
    """Last call time per number, kept for the largest window and capped at ``max_entries`` numbers."""

    def __init__(self, windows: tuple[str, ...] = ("24h",), max_entries: int = 500_000) -> None:
        self.windows = tuple((w, parse_window(w)) for w in windows)
        self.horizon = max((s for _, s in self.windows), default=0.0)
        self.max_entries = max_entries
        self._last: OrderedDict[str, tuple[float, str]] = OrderedDict()  # number -> (last call ts, linkedid)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._last)

    def check_and_add(self, number: str | None, ts: float, linkedid: str = "") -> tuple[str, ...]:
        """Windows in which ``number`` called before ``ts``; then remember this call.

        The same Linkedid is never a repeat of itself (a call stored as ``shutdown`` and adopted again after a
        restart warms the index with its own number).
        """
        if number is None:
            return ()
        self._prune(ts)
        prev = self._last.get(number)
        hits: tuple[str, ...] = ()
        if prev is not None and prev[0] <= ts and not (linkedid and prev[1] == linkedid):
            hits = tuple(label for label, secs in self.windows if ts - prev[0] <= secs)
        self.remember(number, ts, linkedid)
        return hits

    def remember(self, number: str, ts: float, linkedid: str = "") -> None:
        """Record a call (also used to warm the index from stored calls)."""
        prev = self._last.get(number)
        if prev is not None and prev[0] >= ts:
            return
        self._last[number] = (ts, linkedid)
        self._last.move_to_end(number)
        while len(self._last) > self.max_entries:
            self._last.popitem(last=False)
            self.evicted += 1

    def _prune(self, now: float) -> None:
        # Entries are in insertion order of their latest call, so the oldest are at the front.
        while self._last:
            _, (ts, _lid) = next(iter(self._last.items()))
            if now - ts <= self.horizon:
                break
            self._last.popitem(last=False)
