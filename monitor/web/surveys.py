"""``GET /api/v1/surveys?from=&to=&queue=&agent=&max_score=&limit=``: who to call back, for supervisors.

:func:`monitor.web.server.make_app` mounts it with :func:`add_survey_routes` (behind its auth middleware); the
data comes from an injected :class:`SurveyQuery` (the store implements it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

MAX_LIMIT = 1000


class SurveyQuery(Protocol):
    """Stored survey results by time range (``ended_ts`` in [since, until)) and filters, newest first."""

    async def __call__(
        self, *, since: float | None, until: float | None, queue: str | None, agent: str | None,
        max_score: int | None, limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        """Matching results as JSON-ready dicts."""
        ...


def parse_time(text: str) -> float:
    """Epoch seconds or ISO 8601 (``2024-05-01``, ``2024-05-01T08:00:00Z``; naive = UTC) -> epoch s."""
    try:
        return float(text)
    except ValueError:
        pass
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _params(q: Mapping[str, str]) -> dict[str, Any]:
    errors: list[str] = []
    out: dict[str, Any] = {"queue": q.get("queue") or None, "agent": q.get("agent") or None}
    for key, name in (("from", "since"), ("to", "until")):
        out[name] = None
        if q.get(key):
            try:
                out[name] = parse_time(q[key])
            except ValueError:
                errors.append(f"{key}: not an epoch or ISO 8601 time")
    for key, lo, hi, default in (("max_score", 0, 10, None), ("limit", 1, MAX_LIMIT, 100)):
        out[key] = default
        if q.get(key):
            try:
                v = int(q[key])
                if not lo <= v <= hi:
                    raise ValueError
                out[key] = v
            except ValueError:
                errors.append(f"{key}: an integer from {lo} to {hi}")
    if out["since"] is not None and out["until"] is not None and out["since"] > out["until"]:
        errors.append("from: after to")
    if errors:
        raise web.HTTPBadRequest(text='{"error": "' + "; ".join(errors) + '"}', content_type="application/json")
    return out


def add_survey_routes(app: web.Application, query: SurveyQuery) -> None:
    """Mount ``GET /api/v1/surveys`` on ``app``."""

    async def surveys(request: web.Request) -> web.Response:
        p = _params(request.query)
        rows = list(await query(**p))
        return web.json_response({"count": len(rows), "surveys": rows})

    app.router.add_get("/api/v1/surveys", surveys)
