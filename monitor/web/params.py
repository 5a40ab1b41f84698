"""Query parameters of every HTTP endpoint: one declaration per endpoint, one validation, the OpenAPI text from it.

An endpoint names the parameters it knows (:data:`ENDPOINTS`); anything else, a value given twice, an empty value,
a time that is not an epoch second or an ISO 8601 date-time between 1970 and 9999 (so ``nan``, ``inf``, ``1e400``
never reach a query), an integer outside its range or an over-long text is a 400 with every problem in one JSON
``{"error": "..."}``. Epoch values are plain decimals on purpose (no exponent, no ``inf``): the same pattern is
published in the OpenAPI document, so what the document says is what the server takes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

MAX_LIMIT = 1000
MAX_WORKLIST = 100_000  # the owed-callback worklist's own bound (OwedCallbacks.max_open)
MAX_TS = 253402300799.0  # 9999-12-31T23:59:59Z: the last second ISO 8601 (and datetime) can name
_MAX_LEN = 64  # of a time or integer value (texts have their own max_len)

#: Epoch seconds (plain decimal) or an ISO 8601 date / date-time; the OpenAPI document publishes this pattern.
TIME_PATTERN = r"^\s*(-?[0-9]+(\.[0-9]+)?|[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?(Z|[+-][0-9:]+)?)\s*$"
_TIME = re.compile(TIME_PATTERN)
_EPOCH = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_INT = re.compile(r"^-?[0-9]+$")


@dataclass(frozen=True, slots=True)
class Param:
    """One query parameter: ``kind`` time (-> epoch s, float), int (in [lo, hi]), text (up to ``max_len``) or
    choice (one of ``choices``)."""

    name: str
    kind: Literal["time", "int", "text", "choice"]
    doc: str
    lo: int = 0
    hi: int = 0
    default: int | str | None = None
    max_len: int = 128
    choices: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """The parameter's JSON schema (OpenAPI)."""
        if self.kind == "time":
            return {"type": "string", "description": "epoch seconds or ISO 8601 (naive = UTC)", "pattern": TIME_PATTERN}
        if self.kind == "int":
            out: dict[str, Any] = {"type": "integer", "minimum": self.lo, "maximum": self.hi}
            return out if self.default is None else {**out, "default": self.default}
        if self.kind == "choice":
            enum: dict[str, Any] = {"type": "string", "enum": list(self.choices)}
            return enum if self.default is None else {**enum, "default": self.default}
        return {"type": "string", "minLength": 1, "maxLength": self.max_len}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The parameters an endpoint takes; ``ordered`` = (earlier, later) time names that must not be reversed."""

    params: tuple[Param, ...] = ()
    ordered: tuple[str, str] | None = None


_LIMIT = Param("limit", "int", "at most this many", 1, MAX_LIMIT, default=100)
_QUEUE = Param("queue", "text", "only this queue")

ENDPOINTS: dict[str, Endpoint] = {
    "/metrics": Endpoint(), "/healthz": Endpoint(), "/readyz": Endpoint(),
    "/api/v1/openapi.json": Endpoint(), "/api/v1/queues": Endpoint(),
    "/api/v1/wallboard": Endpoint(), "/api/v1/wallboard/events": Endpoint(),
    "/api/v1/calls": Endpoint((Param("since", "time", "calls that started at or after this time"), _QUEUE, _LIMIT)),
    "/api/v1/summary": Endpoint((Param("from", "time", "start (default: to - 24 h)"),
                                 Param("to", "time", "end (default: now)")), ordered=("from", "to")),
    "/api/v1/surveys": Endpoint((
        Param("from", "time", "results that ended at or after"), Param("to", "time", "results that ended before"),
        _QUEUE, Param("agent", "text", "only this agent"),
        Param("max_score", "int", "CSAT at most this", 0, 10), _LIMIT), ordered=("from", "to")),
    "/api/v1/agents": Endpoint((_QUEUE, Param("agent", "text", "only this agent (member name)"))),
    "/api/v1/callbacks": Endpoint((
        Param("state", "choice", "open: callers still owed a call (closed ones are in the store)", default="open",
              choices=("open",)), _QUEUE,
        Param("format", "choice", "json (default) or csv (also chosen by Accept: text/csv)", choices=("json", "csv")),
        Param("limit", "int", "at most this many rows (oldest first)", 1, MAX_WORKLIST, default=MAX_WORKLIST))),
}


class BadParams(ValueError):
    """Every problem with a request's query, joined in one message (the 400's ``error``)."""


def parse_time(text: str) -> float:
    """Epoch seconds (plain decimal) or ISO 8601 (``2024-05-01``, ``2024-05-01T08:00:00Z``; naive = UTC) -> epoch s.

    ValueError when it is neither, or not a finite time from 1970 to 9999.
    """
    if len(text) > _MAX_LEN or not _TIME.match(text):
        raise ValueError("not an epoch time or ISO 8601 date-time")
    t = text.strip()
    if _EPOCH.match(t):
        value = float(t)  # a 400-digit number is inf here, refused below
    else:
        try:
            dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("not a valid ISO 8601 date-time") from None
        value = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value) or not 0.0 <= value <= MAX_TS:
        raise ValueError("out of range (1970 to 9999)")
    return value


def _one(p: Param, raw: str) -> Any:
    if p.kind == "time":
        return parse_time(raw)
    if p.kind == "int":
        if len(raw) > _MAX_LEN or not _INT.match(raw) or not p.lo <= int(raw) <= p.hi:
            raise ValueError(f"an integer from {p.lo} to {p.hi}")
        return int(raw)
    if p.kind == "choice":
        if raw not in p.choices:
            raise ValueError(f"one of {', '.join(p.choices)}")
        return raw
    if len(raw) > p.max_len:
        raise ValueError(f"longer than {p.max_len} characters")
    return raw


def _shown(name: str) -> str:
    return repr(name[:40] + ("..." if len(name) > 40 else ""))


def parse(path: str, query: Mapping[str, str]) -> dict[str, Any]:
    """The validated values of ``query`` (aiohttp's MultiDict; repeated names are refused) for ``path``.

    Absent parameters are their default or None.
    Raises BadParams naming every problem (unknown or repeated names, empty or malformed values, reversed range).
    """
    ep = ENDPOINTS[path]
    known = {p.name: p for p in ep.params}
    errors: list[str] = []
    names = [k for k, _ in query.items()]  # a MultiDict's items() keeps repeats (its keys() does not)
    unknown = sorted({n for n in names if n not in known})
    if unknown:
        shown = ", ".join(_shown(n) for n in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        errors.append(f"unknown query parameter(s): {shown}" + (f" (takes {', '.join(known)})" if known else
                                                               " (takes none)"))
    out: dict[str, Any] = {}
    for name, p in known.items():
        if names.count(name) > 1:
            errors.append(f"{name}: given more than once")
            continue
        raw = query.get(name)
        if raw is None:
            out[name] = p.default
        elif not raw.strip():
            errors.append(f"{name}: empty (leave it out instead)")
        else:
            try:
                out[name] = _one(p, raw)
            except ValueError as exc:
                errors.append(f"{name}: {exc}: {raw[:40]!r}" if p.kind in ("time", "int") else f"{name}: {exc}")
    if ep.ordered is not None and not errors:
        a, b = ep.ordered
        if out.get(a) is not None and out.get(b) is not None and out[a] > out[b]:
            errors.append(f"{a}: after {b}")
    if errors:
        raise BadParams("; ".join(errors))
    return out


def bad_request(message: str) -> web.HTTPBadRequest:
    """The 400 with ``{"error": message}`` (raise it)."""
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def query(request: web.Request) -> dict[str, Any]:
    """:func:`parse` of the request's query for its path; a JSON 400 (:func:`bad_request`) on any problem."""
    try:
        return parse(request.path, request.query)
    except BadParams as exc:
        raise bad_request(str(exc)) from None
