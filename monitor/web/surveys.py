"""``GET /api/v1/surveys?from=&to=&queue=&agent=&max_score=&limit=``: who to call back, for supervisors.

:func:`monitor.web.server.make_app` mounts it with :func:`add_survey_routes` (behind its auth middleware); the
data comes from an injected :class:`SurveyQuery` (the store implements it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web

from monitor.web import params


class SurveyQuery(Protocol):
    """Stored survey results by time range (``ended_ts`` in [since, until)) and filters, newest first."""

    async def __call__(
        self, *, since: float | None, until: float | None, queue: str | None, agent: str | None,
        max_score: int | None, limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        """Matching results as JSON-ready dicts."""
        ...


def add_survey_routes(app: web.Application, query: SurveyQuery) -> None:
    """Mount ``GET /api/v1/surveys`` on ``app``."""

    async def surveys(request: web.Request) -> web.Response:
        p = params.query(request)  # the validation of every endpoint (a JSON 400 names each problem)
        rows = list(await query(since=p["from"], until=p["to"], queue=p["queue"], agent=p["agent"],
                                max_score=p["max_score"], limit=p["limit"]))
        return web.json_response({"count": len(rows), "surveys": rows})

    app.router.add_get("/api/v1/surveys", surveys)
