"""The HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and the JSON API under ``/api/v1``."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.core.members import MEMBER_STATES
from monitor.web.metrics import LiveSource, QmonMetrics
from monitor.web.openapi import openapi_document
from monitor.web.surveys import SurveyQuery, add_survey_routes
from monitor.web.wallboard import Wallboard
from monitor.web.wallboard_http import add_wallboard_routes

log = logging.getLogger("qmon.http")
MAX_LIMIT = 1000


class StoreApi(Protocol):
    """What the API needs from :class:`monitor.store.store.Store`."""

    @property
    def stats(self) -> dict[str, Any]:
        """Writer counters and gauges."""
        ...

    async def recent_calls(self, since: float | None = None, queue: str | None = None,
                           limit: int = 100) -> list[dict[str, Any]]:
        """Stored records, newest first."""
        ...

    async def summary(self, from_ts: float, to_ts: float, sl_threshold_s: float = 20.0) -> dict[str, Any]:
        """The replay report over stored records."""
        ...

    async def writable(self) -> tuple[bool, str]:
        """Whether the database takes writes, and why not."""
        ...


class SourceApi(Protocol):
    """What ``/readyz`` needs from an AMI source."""

    @property
    def connected(self) -> bool:
        """Logged in."""
        ...

    @property
    def last_error(self) -> str:
        """Why not, when not."""
        ...


@dataclass
class LivePbx:
    """One AMI connection's live state."""

    live: LiveSource
    source: SourceApi | None = None


@dataclass
class ApiContext:
    """Everything the handlers read (injected; no globals)."""

    metrics: QmonMetrics
    pbxs: dict[str, LivePbx] = field(default_factory=dict)
    store: StoreApi | None = None
    token: str = ""
    sl_threshold_s: float = 20.0
    clock: Callable[[], float] = time.time


CTX: web.AppKey[ApiContext] = web.AppKey("qmon_ctx", ApiContext)


def _json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=web.json_response({"error": message}).text, content_type="application/json")


def parse_time(key: str, text: str) -> float:
    """Epoch seconds or ISO 8601 (naive = UTC); HTTP 400 otherwise."""
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        try:
            dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(f"{key}: not an epoch time or ISO 8601 date-time: {text[:40]!r}") from None
        value = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    if value != value or not -1e11 < value < 1e11:  # NaN, inf, absurd years
        raise _bad(f"{key}: out of range")
    return value


@web.middleware
async def _errors_and_auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    ctx = request.app[CTX]
    if ctx.token and request.path != "/healthz":
        got = request.headers.get("Authorization", "")
        # Constant-time compare: the token guards caller numbers in /api/v1/calls.
        if not (got.startswith("Bearer ") and hmac.compare_digest(got[7:].strip().encode(), ctx.token.encode())):
            return _json_error(401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="qmon"'})
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return _json_error(exc.status, exc.reason, exc.headers if exc.status == 405 else None)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of the injected registry."""
    body = request.app[CTX].metrics.expose()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when every AMI connection is logged in and the store is writable; 503 with the reasons otherwise."""
    ctx = request.app[CTX]
    reasons: list[str] = []
    ami: dict[str, Any] = {}
    for name, p in sorted(ctx.pbxs.items()):
        up = p.source is not None and p.source.connected
        ami[name] = {"up": up}
        if not up:
            why = (p.source.last_error if p.source is not None else "") or "not logged in yet"
            ami[name]["reason"] = why
            reasons.append(f"ami {name}: {why}")
    store: dict[str, Any] = {"ok": True, "reason": "no store configured"}
    if ctx.store is not None:
        try:
            ok, why = await ctx.store.writable()
        except Exception as exc:  # a broken store must show up here, not crash the probe
            ok, why = False, f"{type(exc).__name__}: {exc}"
        store = {"ok": ok, "reason": why}
        if not ok:
            reasons.append(f"store: {why}")
    body = {"ready": not reasons, "reason": "; ".join(reasons) or "ok", "ami": ami, "store": store}
    return web.json_response(body, status=200 if not reasons else 503)


async def queues(request: web.Request) -> web.Response:
    """Live state per queue from the trackers: waiting callers with their wait, members and their state."""
    ctx = request.app[CTX]
    now = ctx.clock()
    out: list[dict[str, Any]] = []
    for name, p in sorted(ctx.pbxs.items()):
        st = p.live.live(now)
        members: dict[str, list[dict[str, Any]]] = {}
        for m in st.members:
            members.setdefault(m.queue, []).append({"name": m.name, "interface": m.interface, "state": m.state,
                                                    "paused_reason": m.paused_reason})
        known = set(st.waiting) | set(members) | set(ctx.metrics.queues)
        for q in sorted(known):
            waits = sorted((max(0.0, st.pbx_now - j), j) for j in st.waiting.get(q, ()))[::-1]
            out.append({
                "pbx": name, "queue": q, "waiting_calls": len(waits),
                "longest_wait_s": round(waits[0][0], 3) if waits else 0.0,
                "waiting": [{"join_ts": j, "wait_s": round(w, 3)} for w, j in waits],
                "members": members.get(q, []),
                "member_counts": st.member_counts.get(q) or dict.fromkeys(MEMBER_STATES, 0),
            })
    ami = {n: bool(p.source is not None and p.source.connected) for n, p in sorted(ctx.pbxs.items())}
    return web.json_response({"queues": out, "ami": ami})


def _limit(q: Mapping[str, str]) -> int:
    raw = q.get("limit", "100")
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"limit: not an integer: {raw[:20]!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise _bad(f"limit: must be from 1 to {MAX_LIMIT}")
    return value


def _unknown(q: Mapping[str, str], allowed: set[str]) -> None:
    extra = sorted(set(q) - allowed)
    if extra:
        raise _bad(f"unknown query parameter(s): {', '.join(extra)[:200]}")


def _store(ctx: ApiContext) -> StoreApi:
    if ctx.store is None:
        raise web.HTTPServiceUnavailable(text='{"error": "no store configured"}', content_type="application/json")
    return ctx.store


async def _stored(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except Exception as exc:  # the database is down: say so, keep serving
        log.warning("API query failed: %s", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text=web.json_response({"error": f"database unavailable: "
                                                                 f"{type(exc).__name__}"}).text,
                                         content_type="application/json") from None


async def calls(request: web.Request) -> web.Response:
    """Recent stored call records (``since``, ``queue``, ``limit``)."""
    ctx = request.app[CTX]
    q = request.query
    _unknown(q, {"since", "queue", "limit"})
    since = parse_time("since", q["since"]) if q.get("since") else None
    queue = q.get("queue") or None
    if queue is not None and len(queue) > 128:
        raise _bad("queue: longer than 128 characters")
    limit = _limit(q)
    rows = await _stored(_store(ctx).recent_calls(since, queue, limit))
    return web.json_response({"count": len(rows), "calls": rows})


async def summary(request: web.Request) -> web.Response:
    """The replay-report numbers over stored records that started in [from, to)."""
    ctx = request.app[CTX]
    q = request.query
    _unknown(q, {"from", "to"})
    to_ts = parse_time("to", q["to"]) if q.get("to") else ctx.clock()
    from_ts = parse_time("from", q["from"]) if q.get("from") else to_ts - 86400.0
    if from_ts > to_ts:
        raise _bad("from: after to")
    rep = await _stored(_store(ctx).summary(from_ts, to_ts, ctx.sl_threshold_s))
    return web.json_response({"from": from_ts, "to": to_ts, "sl_threshold_s": ctx.sl_threshold_s, **rep})


def make_app(ctx: ApiContext, survey_query: SurveyQuery | None = None,
             wallboard: Wallboard | None = None) -> web.Application:
    """The aiohttp application; ``survey_query`` (surveys enabled) mounts ``/api/v1/surveys``, ``wallboard``
    the live wallboard at ``/`` (:mod:`monitor.web.wallboard_http`)."""
    app = web.Application(middlewares=[_errors_and_auth])
    app[CTX] = ctx
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/queues", queues)
    app.router.add_get("/api/v1/calls", calls)
    app.router.add_get("/api/v1/summary", summary)
    if survey_query is not None:
        add_survey_routes(app, survey_query)
    if wallboard is not None:
        add_wallboard_routes(app, wallboard, ctx.token, ctx.clock)
    doc = openapi_document(surveys=survey_query is not None, wallboard=wallboard is not None)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(doc)

    app.router.add_get("/api/v1/openapi.json", openapi)
    return app


async def start_http(app: web.Application, bind: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (for cleanup) and the bound port (``port=0`` picks a free one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind, port)
    await site.start()
    # aiohttp keeps the asyncio server here; it is the only way to learn which port 0 picked.
    sockets = getattr(site._server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    log.info("HTTP on http://%s:%d (/metrics, /healthz, /readyz, /api/v1)", bind, bound)
    return runner, bound
