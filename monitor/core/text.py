"""Text from the PBX made safe to store, log and show: no control characters, no lone surrogates."""

from __future__ import annotations

import re

# C0 controls (NUL included: PostgreSQL refuses it in text), DEL, C1 controls, and lone UTF-16 surrogates
# (from a ``surrogateescape`` decode of bytes that were not UTF-8; no driver can encode them).
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACES = {"\t": " ", "\n": " ", "\r": " "}


def _repl(m: re.Match[str]) -> str:
    c = m.group()
    if c in _SPACES:
        return " "
    return "\ufffd" if "\ud800" <= c <= "\udfff" else ""


def clean_text(s: str) -> str:
    """``s`` without control characters: tab/CR/LF become a space, other C0/C1 controls and NUL are dropped,
    lone surrogates become U+FFFD. Pure; the identity on ordinary text (str -> str)."""
    return _BAD.sub(_repl, s) if _BAD.search(s) else s


def clean_opt(s: str | None) -> str | None:
    """:func:`clean_text` that passes None through."""
    return None if s is None else clean_text(s)
