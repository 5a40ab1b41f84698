"""``GET /api/v1/agents`` and ``GET /api/v1/callbacks``: the supervisor's live view (issue 13) as JSON and CSV.

Both read :class:`~monitor.core.ingest.LiveState` snapshots (the AgentBoard rows and the owed-callback worklist),
injected as a callable so this module needs nothing of the server. The worklist holds caller numbers: it is behind
the same bearer token as the rest of the API and, like every response, sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from monitor.core.agents import AgentRow
from monitor.core.ingest import LiveState
from monitor.core.owed import Owed
from monitor.web import params

#: (pbx, its LiveState) per AMI connection, sorted by pbx, taken at the request's "now".
Snapshots = Callable[[], Sequence[tuple[str, LiveState]]]
CSV_COLUMNS = ("pbx", "caller", "time", "queue", "wait_s", "outcome", "voicemail", "attempts", "owed_since",
               "age_s")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def agent_json(pbx: str, r: AgentRow, at: float) -> dict[str, Any]:
    """One AgentRow as the API shows it: durations in seconds (``*_s``), times epoch seconds on the PBX clock."""
    return {
        "pbx": pbx, "queue": r.queue, "agent": r.agent, "interface": r.interface, "state": r.state,
        "since_ts": r.since, "state_duration_s": None if r.since is None else _r(max(0.0, at - r.since)),
        "pause_reason": r.pause_reason, "pause_label": r.pause_label,
        "logged_in_s": _r(r.logged_in_s), "paused_s": _r(r.paused_s),
        "paused_by_reason_s": {k: _r(v) for k, v in sorted(r.paused_by_reason.items())},
        "paused_by_label_s": {k: _r(v) for k, v in sorted(r.paused_by_label.items())},
        "state_s": {k: _r(v) for k, v in r.state_s.items()},
        "talk_s": _r(r.talk_s), "wrapup_s": _r(r.wrapup_s), "answered": r.answered, "completed": r.completed,
        "ring_no_answer": r.ring_no_answer, "aht_s": _r(r.aht_s), "occupancy": _r(r.occupancy),
    }


def owed_json(pbx: str, o: Owed, pbx_now: float) -> dict[str, Any]:
    """One worklist row: the number to call, its latest unanswered call (times epoch s, PBX clock; waits s)."""
    return {
        "pbx": pbx, "caller": o.caller, "queue": o.queue, "first_ts": o.first_ts, "last_ts": o.last_ts,
        "owed_since_ts": o.owed_since_ts, "age_s": _r(max(0.0, pbx_now - o.owed_since_ts)), "wait_s": _r(o.wait_s),
        "outcome": o.outcome, "voicemail": o.voicemail, "attempts": o.attempts, "linkedids": list(o.linkedids),
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading apostrophe (OWASP CSV
    injection); a caller ID is whatever the calling side sent. A dialable ``+15551234567`` is left as it is."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not (text[0] in "+-" and text[1:].replace(".", "", 1).isdigit()):
        return "'" + text
    return text


def worklist_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The worklist as CSV (header :data:`CSV_COLUMNS`; times ISO 8601 UTC, waits and ages in seconds)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for o in rows:
        w.writerow([_cell(x) for x in (o["pbx"], o["caller"], _iso(o["last_ts"]), o["queue"] or "", o["wait_s"],
                                       o["outcome"], "yes" if o["voicemail"] else "no", o["attempts"],
                                       _iso(o["owed_since_ts"]), o["age_s"])])
    return out.getvalue()


def _wants_csv(request: web.Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("Accept", "")


def add_supervisor_routes(app: web.Application, snapshots: Snapshots) -> None:
    """Mount ``GET /api/v1/agents`` and ``GET /api/v1/callbacks`` on ``app`` (behind its auth middleware)."""

    async def agents(request: web.Request) -> web.Response:
        """Per pbx, queue and agent (and per agent over all its queues: queue ``*``) as of now."""
        p = params.query(request)
        out = []
        for pbx, st in snapshots():
            for r in (*st.agents, *st.agent_totals):
                if p["queue"] in (None, r.queue) and p["agent"] in (None, r.agent):
                    out.append(agent_json(pbx, r, st.agents_at))
        return web.json_response({"count": len(out), "agents": out})

    async def callbacks(request: web.Request) -> web.Response:
        """The callers still owed a call, oldest first; CSV with ``format=csv`` or ``Accept: text/csv``."""
        p = params.query(request)
        rows = [owed_json(pbx, o, st.pbx_now) for pbx, st in snapshots() for o in st.owed
                if p["queue"] in (None, o.queue)]
        rows.sort(key=lambda o: o["owed_since_ts"])
        total, rows = len(rows), rows[:p["limit"]]
        if _wants_csv(request, p["format"]):
            return web.Response(text=worklist_csv(rows), content_type="text/csv", charset="utf-8", headers={
                "Content-Disposition": 'attachment; filename="qmon-callbacks-open.csv"', "X-Total-Count": str(total)})
        return web.json_response({"state": p["state"], "count": total, "callbacks": rows})

    app.router.add_get("/api/v1/agents", agents)
    app.router.add_get("/api/v1/callbacks", callbacks)
