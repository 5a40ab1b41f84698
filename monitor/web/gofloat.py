"""Prometheus's text form of a float value, as prometheus-client's ``floatToGoString`` writes it (Go's ``%g``-like
spelling: Python's ``repr`` below 1e6, an exponent form of the repr's digits from 1e6 on), one value at a time
(:func:`value_text`) or a whole column in C (:func:`go_texts`); ``tests/test_exposition.py`` compares both with the
library's function over every decade, zeros, negatives, NaN and infinities.
"""

from __future__ import annotations

import functools
import itertools
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import add, eq, itemgetter, le, not_, setitem
from typing import Any

from prometheus_client.utils import floatToGoString as _float_to_go_string

floatToGoString: Callable[[Any], str] = _float_to_go_string  # the library's value formatting (untyped there)

__all__ = ["floatToGoString", "go_texts", "value_text"]


def value_text(v: Any) -> str:
    """``floatToGoString(v)`` and a newline (repr of the float where Go and Python print the same)."""
    f = float(v)
    if -math.inf < f < 1e6:  # Go switches to exponents for positive values from 1e6 on; NaN/Inf are spelled apart
        return repr(f) + "\n"
    if 1e6 <= f < 1e16:  # floatToGoString's exponent form of a fixed-point repr (epoch timestamps: since, ...)
        s = repr(f)
        dot = s.find(".")
        return f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.") + f"e+{dot - 1:02d}\n"
    return floatToGoString(f) + "\n"


_NEWLINES = itertools.repeat("\n")
_DOTS = itertools.repeat(".")
_NOTHING = itertools.repeat("")
_ONCE = itertools.repeat(1)
_STRIP = itertools.repeat("0.")
_FIRST = itemgetter(0)
_FROM_1E6 = functools.partial(le, 1e6)
_DECADES = [10.0 ** k for k in range(6, 17)]  # 1e6 ... 1e16, exact floats
_POINTED = {c: c + "." for c in "-0123456789"}  # a repr's first character, and the point Go writes after it


def go_texts(values: Sequence[Any]) -> list[str] | None:
    """``value_text`` of every value, in C, when all are finite floats (else None): ``repr``, where Go and Python
    spell a float alike (-0.0 included), and from 1e6 on Go's exponent form of the repr's digits (floatToGoString's
    own string operations, applied to all the values of one decade at once; durations in seconds since an epoch
    timestamp or over 11 days are there)."""
    if not values or set(map(type, values)) != {float}:
        return None
    try:
        if not math.isfinite(math.fsum(values)):  # NaN or an infinity makes the sum so
            return None
    except (OverflowError, ValueError):
        return None
    reprs = list(map(repr, values))
    high = max(values)
    if high < 1e6:
        return list(map(add, reprs, _NEWLINES))
    big = list(map(_FROM_1E6, values))
    decade = bisect_right(_DECADES, min(compress(values, big)))  # 1e(k + 5) <= the least big one < 1e(k + 6)
    if decade < len(_DECADES) and high < _DECADES[decade]:
        # One decade in [1e6, 1e16): every big repr has its point after k + 6 digits (a repr below 1e(k + 6) never
        # rounds up to it: it would read back as 1e(k + 6), which is exactly representable). All are made the big
        # ones' way (in C), then the others (below 1e6: a few durations of the day) are put back as they are.
        made = list(map(add, _go_digits(reprs), itertools.repeat(f"e+{decade + 5:02d}\n")))
        if False in big:
            for i in compress(range(len(values)), map(not_, big)):
                made[i] = reprs[i] + "\n"
        return made
    at = list(compress(range(len(values)), big))
    every = len(at) == len(values)
    big_reprs = reprs if every else list(map(reprs.__getitem__, at))
    out = None if every else list(map(add, reprs, _NEWLINES))
    dots = list(map(str.find, big_reprs, _DOTS))
    for dot in set(dots):
        if dot < 7:  # from 1e16 on the repr has an exponent already, as Go's: floatToGoString keeps it
            if out is None:
                out = list(map(add, reprs, _NEWLINES))
            continue
        one = dots.count(dot) == len(dots)
        same = big_reprs if one else list(compress(big_reprs, map(eq, dots, itertools.repeat(dot))))
        go = map(add, _go_digits(same), itertools.repeat(f"e+{dot - 1:02d}\n"))
        if one and out is None:
            return list(go)
        if out is None:
            out = list(map(add, reprs, _NEWLINES))
        where = at if one else compress(at, map(eq, dots, itertools.repeat(dot)))
        deque(map(setitem, repeat(out), where, go), 0)
    return out


def _go_digits(reprs: Iterable[str]) -> Iterator[str]:
    """floatToGoString's ``f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")`` of reprs in fixed notation, in C: the
    digits without the point, the point put back after the first digit (its first occurrence); only an integral
    value's ".0" leaves zeros to strip."""
    digits = list(map(str.replace, reprs, _DOTS, _NOTHING))
    first = list(map(_FIRST, digits))
    return map(str.rstrip, map(str.replace, digits, first, map(_POINTED.__getitem__, first), _ONCE), _STRIP)
