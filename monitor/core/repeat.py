"""Repeat-caller index: the first-call-resolution proxy, bounded in memory."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

#: Caller "numbers" that mean the number was withheld (compared case-insensitively); empty and all-zero numbers
#: (``0000000000``, ``00``, ``+000``: how some carriers present a withheld caller) are withheld too.
WITHHELD_NUMBERS: tuple[str, ...] = (
    "anonymous", "restricted", "unavailable", "unknown", "<unknown>", "withheld", "private", "none", "s",
)
_STRIP = re.compile(r"[\s\-().]")


@lru_cache(maxsize=16)
def _lowered(withheld: tuple[str, ...]) -> frozenset[str]:
    return frozenset(w.strip().lower() for w in withheld)


def normalize_number(raw: str | None, region: str = "", trunk_prefixes: tuple[str, ...] = (),
                     withheld: tuple[str, ...] = WITHHELD_NUMBERS) -> str | None:
    """A caller number as one key per subscriber; None for withheld, anonymous, empty or all-zero numbers.

    With a home ``region`` (ISO 3166, e.g. ``PL``) every national or international spelling becomes E.164
    (``+48 22 123 45 67``, ``0048221234567`` and ``221234567`` -> ``+48221234567``, by the phonenumbers library);
    without one, only ``+`` numbers are; anything else is its digits. ``trunk_prefixes`` (e.g. a carrier's
    ``9`` before every number) are stripped first, the longest matching one.
    """
    if raw is None:
        return None
    s = _STRIP.sub("", raw.strip())
    if not s or s.lower() in _lowered(withheld):
        return None
    plus = s.startswith("+")
    digits = s[1:] if plus else s
    if not digits.isdigit() or not digits.strip("0"):
        return None
    if not plus:
        for p in sorted(trunk_prefixes, key=len, reverse=True):
            if p and digits.startswith(p) and len(digits) > len(p):
                digits = digits[len(p):]
                break
        if not digits.strip("0"):
            return None
    if plus or region:
        # Imported on first use: a replay or daemon whose numbers are national, with no home region, never needs it
        # (it is ~10 ms of `qmon replay`'s start-up: docs/performance.md).
        import phonenumbers

        try:
            parsed = phonenumbers.parse(("+" if plus else "") + digits, region.upper() or None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return ("+" if plus else "") + digits


#: The longest caller number kept (digits): E.164 allows 15, plus room for a trunk prefix and ``00``.
MAX_NUMBER_DIGITS = 20


@dataclass(frozen=True)
class NumberNormalizer:
    """:func:`normalize_number` configured once (the tracker's ``home_region``/``trunk_prefixes``/withheld list).

    Everything that keys by caller number (the tracker, the survey opt-out list and cooldown) uses the same one,
    so ``221234567`` typed by a supervisor and ``+48221234567`` stored by the tracker are one subscriber.
    """

    region: str = ""
    trunk_prefixes: tuple[str, ...] = ()
    withheld: tuple[str, ...] = WITHHELD_NUMBERS

    def __call__(self, raw: str | None) -> str | None:
        """The number's key, or None (see :func:`normalize_number`)."""
        return normalize_number(raw, self.region, self.trunk_prefixes, self.withheld)


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
