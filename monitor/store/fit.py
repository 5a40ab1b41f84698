"""Rows made to fit their columns before the database sees them (a bad field must not cost the record)."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import BigInteger, FromClause, Integer, String

from monitor.core.text import clean_text
from monitor.store.engine import cut

INT32 = (-(2**31), 2**31 - 1)
# What a row refused as it is loses when it is stored again (``scrub``): the free text, never keys or times.
FREE_TEXT = frozenset({"caller_name", "extra", "reason", "raw", "target", "language", "from_agent", "vm_reason"})


@cache
def _lengths(table: FromClause) -> dict[str, int | None]:
    """Column name -> the longest string it takes (None: any length), for every column of ``table``."""
    return {c.key: (getattr(c.type, "length", None) if isinstance(c.type, String) else None) or None
            for c in table.c}


def fit_row(table: FromClause, row: dict[str, Any], scrub: bool = False) -> dict[str, Any]:
    """``row`` with every string cleaned of control characters and cut to its column's length.

    ``scrub`` also blanks the free-text columns ("" or NULL) and clamps integers to 32 bits: the second try
    of a row the database refused (see ``Store.write_items``).
    """
    if scrub:
        return _scrubbed(table, row)
    lengths = _lengths(table)
    out = row.copy()
    for key, v in row.items():
        if isinstance(v, str) and key in lengths:  # what is not a column is left to SQLAlchemy to refuse
            v = clean_text(v)
            n = lengths[key]
            out[key] = v[:n] if n is not None and len(v) > n else v
    return out


def _scrubbed(table: FromClause, row: dict[str, Any]) -> dict[str, Any]:
    """:func:`fit_row` with ``scrub``: free text blanked, integers clamped, the rest fitted column by column."""
    out: dict[str, Any] = {}
    for key, v in row.items():
        col = table.c.get(key)
        if col is None:
            out[key] = v
            continue
        if key in FREE_TEXT and v is not None:
            v = None if getattr(col, "nullable", False) else ""
        elif isinstance(v, str):
            length = getattr(col.type, "length", None) if isinstance(col.type, String) else None
            v = cut(v, length) if length else cut(v, len(v))
        elif (isinstance(v, int) and not isinstance(v, bool) and isinstance(col.type, Integer)
              and not isinstance(col.type, BigInteger)):
            v = min(max(v, INT32[0]), INT32[1])
        out[key] = v
    return out


def fit_rows(table: FromClause, rows: list[dict[str, Any]], scrub: bool = False) -> list[dict[str, Any]]:
    """:func:`fit_row` over ``rows``."""
    return [fit_row(table, r, scrub) for r in rows]
