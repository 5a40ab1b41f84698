"""The HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and the JSON API under ``/api/v1``."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.core.members import MEMBER_STATES
from monitor.web.conn import HEADER_TIMEOUT_S, SECURITY_HEADERS, ConnGuard, GuardedHandler, GuardedSite
from monitor.web.metrics import LiveSource, QmonMetrics
from monitor.web.openapi import openapi_document
from monitor.web.params import bad_request, query
from monitor.web.supervisor_api import add_supervisor_routes
from monitor.web.surveys import SurveyQuery, add_survey_routes
from monitor.web.wallboard import Wallboard
from monitor.web.wallboard_http import add_wallboard_routes

log = logging.getLogger("qmon.http")
MAX_BODY_BYTES = 64 * 1024  # GET only: no request of ours has a body worth more
MAX_LINE_BYTES = 8190  # request line and each header field (aiohttp's default, explicit)


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

    @property
    def synced(self) -> bool:
        """Logged in and resynced (the live state is Asterisk's)."""
        ...

    @property
    def resync_error(self) -> str:
        """Why the resync has not succeeded yet."""
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
    bind: str = "127.0.0.1"  # the HTTP bind address (start_http sets it): without a token, a Host it may be named by


CTX: web.AppKey[ApiContext] = web.AppKey("qmon_ctx", ApiContext)


def _json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1; brackets allowed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_allowed(ctx: ApiContext, host_header: str | None) -> bool:
    """Without a token on a loopback bind, only loopback names (and the bind address) may be in ``Host``: a page
    on another site whose name an attacker re-points at 127.0.0.1 (DNS rebinding) sends its own name and is
    refused. With a token, or a non-loopback bind the operator opened (``--insecure-no-token``), any Host."""
    if ctx.token or not _loopback(ctx.bind) or host_header is None:  # no Host: not a browser
        return True
    host = host_header.strip()
    if host.startswith("["):  # [::1]:9464
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        host = host.partition(":")[0]
    return _loopback(host) or host.strip("[]").lower() == ctx.bind.strip("[]").lower()


def _bearer(header: str) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (the scheme is case-insensitive, RFC 7235), else None."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # A response-prepare signal, not the middleware: it also reaches aiohttp's own 404/405 and error pages.
    response.headers.update(SECURITY_HEADERS)


@web.middleware
async def _errors_and_auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Host (without a token: 421 for a name that is not loopback's), token (401 before 404/405: an
    unauthenticated caller learns nothing about routes), then one JSON ``{"error": ...}`` body for every failure:
    400 (parameters), 404, 405 (with ``Allow``), 503, 500."""
    ctx = request.app[CTX]
    if not _host_allowed(ctx, request.headers.get("Host")):
        return _json_error(421, "Host is not this server's loopback name (without a token only localhost, "
                                "127.0.0.1, [::1] or the bind address are served)")
    if ctx.token and request.path != "/healthz":
        got = _bearer(request.headers.get("Authorization", ""))
        # Constant-time compare: the token guards caller numbers in /api/v1/calls.
        if got is None or not hmac.compare_digest(got.encode(), ctx.token.encode()):
            return _json_error(401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="qmon"'})
    proto = request.protocol
    if isinstance(proto, GuardedHandler):
        proto.busy = True  # inside a request (a wallboard stream may last hours): never closed to make room
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        # Only Allow is carried over: exc.headers also holds a text/plain Content-Type (which json_response refuses).
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _json_error(exc.status, exc.reason, allow)
    except Exception:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return _json_error(500, "internal error")
    finally:
        if isinstance(proto, GuardedHandler):
            proto.busy = False


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus exposition of the injected registry (text format, whatever the Accept header asks), sent part by
    part as rendered: at 10 000 members it is ~20 MB, which a single body would copy twice more on its way out."""
    query(request)
    parts = await request.app[CTX].metrics.expose_parts()
    resp = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
    resp.content_length = sum(map(len, parts))
    # A scraper that leaves mid-body (Prometheus resets at its scrape_timeout) is routine, as it was while aiohttp
    # wrote a whole Response itself: no ERROR with a traceback, no 500 on a body already started.
    with contextlib.suppress(ConnectionError):
        await resp.prepare(request)
        if request.method != "HEAD":
            for part in parts:
                await resp.write(part)
        await resp.write_eof()
    return resp


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving."""
    query(request)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when every AMI connection is logged in and resynced and the store is writable; 503 with the reasons
    otherwise (``resyncing: <why>`` while Asterisk has not yet answered QueueStatus/CoreShowChannels)."""
    query(request)
    ctx = request.app[CTX]
    reasons: list[str] = []
    ami: dict[str, Any] = {}
    for name, p in sorted(ctx.pbxs.items()):
        up = p.source is not None and p.source.connected
        synced = p.source is not None and p.source.synced
        ami[name] = {"up": up, "synced": synced}
        if not up or not synced:
            if not up:
                why = (p.source.last_error if p.source is not None else "") or "not logged in yet"
            else:
                why = f"resyncing: {(p.source.resync_error if p.source is not None else '') or 'waiting for answers'}"
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
    query(request)
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
    p = query(request)
    rows = await _stored(_store(ctx).recent_calls(p["since"], p["queue"], p["limit"]))
    return web.json_response({"count": len(rows), "calls": rows})


async def summary(request: web.Request) -> web.Response:
    """The replay-report numbers over stored records that started in [from, to) (default: the last 24 h)."""
    ctx = request.app[CTX]
    p = query(request)
    to_ts = p["to"] if p["to"] is not None else ctx.clock()
    from_ts = p["from"] if p["from"] is not None else to_ts - 86400.0
    if from_ts > to_ts:  # only when one of them is defaulted; both given is checked by parse
        raise bad_request("from: after to")
    rep = await _stored(_store(ctx).summary(from_ts, to_ts, ctx.sl_threshold_s))
    return web.json_response({"from": from_ts, "to": to_ts, "sl_threshold_s": ctx.sl_threshold_s, **rep})


def make_app(ctx: ApiContext, survey_query: SurveyQuery | None = None,
             wallboard: Wallboard | None = None) -> web.Application:
    """The aiohttp application; ``survey_query`` (surveys enabled) mounts ``/api/v1/surveys``, ``wallboard``
    the live wallboard at ``/`` (:mod:`monitor.web.wallboard_http`)."""
    # Every buffer fed by a peer is bounded: request bodies (we take none) at 64 KiB.
    app = web.Application(middlewares=[_errors_and_auth], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(_security_headers)
    app[CTX] = ctx
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/queues", queues)
    app.router.add_get("/api/v1/calls", calls)
    app.router.add_get("/api/v1/summary", summary)
    add_supervisor_routes(app, lambda: [(n, p.live.live(ctx.clock())) for n, p in sorted(ctx.pbxs.items())])
    if survey_query is not None:
        add_survey_routes(app, survey_query)
    if wallboard is not None:
        add_wallboard_routes(app, wallboard, ctx.token, ctx.clock)
    doc = openapi_document(surveys=survey_query is not None, wallboard=wallboard is not None)

    async def openapi(request: web.Request) -> web.Response:
        query(request)
        return web.json_response(doc)

    app.router.add_get("/api/v1/openapi.json", openapi)
    return app


class _ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in typeshed
    """The logger aiohttp's protocol gets. aiohttp logs every request it cannot parse (garbage, a bad header, an
    8 KB request line) as an ERROR with a traceback: a client must not be able to flood the log. Here that is one
    line without the traceback, then at most one a minute with the count; any other error keeps its traceback."""

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(log, {})
        self.interval_s, self.clock = interval_s, clock
        self.count = 0  # unparseable requests since start
        self._since = 0
        self._next: float | None = None

    def log(self, level: int, msg: object, *args: object, **kw: Any) -> None:
        """Pass on, or turn an unparseable request's traceback into the throttled line."""
        exc = kw.get("exc_info")
        if not isinstance(exc, HttpProcessingError) or level < logging.WARNING:  # aiohttp's debug: TLS probes
            super().log(level, msg, *args, **kw)
            return
        self.count += 1
        self._since += 1
        now = self.clock()
        if self._next is not None and now < self._next:
            return
        why = str(exc.message).splitlines()[0][:120] if exc.message else type(exc).__name__
        if self._next is None:
            self.logger.warning("HTTP: unparseable request answered 400 (%s)", why)
        else:
            self.logger.warning("HTTP: %d unparseable request(s) answered 400 in the last %.0f s (latest: %s)",
                                self._since, self.interval_s, why)
        self._since, self._next = 0, now + self.interval_s


async def start_http(app: web.Application, bind: str, port: int, guard: ConnGuard | None = None,
                     header_timeout_s: float = HEADER_TIMEOUT_S) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (for cleanup) and the bound port (``port=0`` picks a free one).
    Connections are bounded by ``guard`` (default: :data:`~monitor.web.conn.MAX_CONNECTIONS`), a request's headers
    by ``header_timeout_s`` (s; aiohttp's keep-alive timer, which runs while a connection waits for a request)."""
    app[CTX].bind = bind
    # Request line and each header bounded (aiohttp's own defaults are 8190 bytes; named here, and tested).
    kw: dict[str, Any] = {"access_log": None, "logger": _ProtocolLog(), "max_line_size": MAX_LINE_BYTES,
                          "max_field_size": MAX_LINE_BYTES, "keepalive_timeout": header_timeout_s}
    runner = web.AppRunner(app, **kw)
    await runner.setup()
    site = GuardedSite(runner, bind, port, guard or ConnGuard(), **kw)
    await site.start()
    bound = site.bound_port
    log.info("HTTP on http://%s:%d (/metrics, /healthz, /readyz, /api/v1)", bind, bound)
    return runner, bound
