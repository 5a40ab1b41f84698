"""The wallboard's routes: the page at ``/``, its static files, ``/api/v1/wallboard`` and its server-sent events.

Protection: the same token as the API. A TV browser (and ``EventSource``) cannot send a bearer header, so the
token is accepted once in the URL (``/?token=...``) and exchanged for a cookie (HttpOnly, SameSite=Strict, Secure
over HTTPS) whose value is an HMAC of the token: it opens the wallboard paths only, never the rest of the API,
and stops working when the token changes. The page, CSS and script are served from the package (no CDN).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_sse import sse_response

from monitor.web.params import query
from monitor.web.wallboard import Wallboard, snapshot

COOKIE = "qmon_wallboard"
PAGE_PATHS = frozenset({"/", "/api/v1/wallboard", "/api/v1/wallboard/events"})
STATIC_PREFIX = "/wallboard/"
_STATIC = {"wallboard.css": "text/css", "wallboard.js": "text/javascript"}
# No inline script or style, nothing from another origin: the page works offline on a LAN.
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " \
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>qmon wallboard</title>
<link rel="stylesheet" href="/wallboard/wallboard.css"></head><body class="login"><main>
<h1>qmon wallboard</h1><p id="login-hint">{message}</p>
<p>Open <code>/?token=YOUR_API_TOKEN</code> once on this screen: the token is exchanged for a cookie and
removed from the address.</p></main></body></html>
"""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WB: web.AppKey[Wallboard] = web.AppKey("qmon_wallboard", Wallboard)


def cookie_value(token: str) -> str:
    """The wallboard cookie for ``token``: HMAC-SHA256(token, purpose), hex; the token itself never leaves."""
    return hmac.new(token.encode(), b"qmon-wallboard-cookie-v1", hashlib.sha256).hexdigest()


def _static(name: str) -> bytes:
    return (resources.files("monitor.web") / "static" / name).read_bytes()


def _login(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=_LOGIN.format(message=message), content_type="text/html",
                        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"})


def _auth_middleware(token: str, max_age_s: int) -> Middleware:
    """Runs before the API's bearer check: on the wallboard paths a valid cookie lets the request through the
    API's chain as the bearer token; ``/?token=`` sets the cookie; everything else is untouched."""
    want = cookie_value(token).encode()

    @web.middleware
    async def wallboard_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not token or not (path in PAGE_PATHS or path.startswith(STATIC_PREFIX)):
            return await handler(request)
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return await handler(request)  # the API's check decides
        if path == "/" and "token" in request.query:
            if not hmac.compare_digest(request.query["token"].encode(), token.encode()):
                return _login(401, "That token is not right.")
            # 303 to "/": the token leaves the address bar (and the browser history).
            resp = web.Response(status=303, headers={"Location": "/", "Cache-Control": "no-store"})
            resp.set_cookie(COOKIE, want.decode(), max_age=max_age_s, path="/", httponly=True, samesite="Strict",
                            secure=request.secure)
            return resp
        # The stylesheet and script hold no data (the login page needs them); a valid cookie opens the rest.
        if path.startswith(STATIC_PREFIX) or hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), want):
            # Through the API's own chain (its token check, error bodies, headers), as the bearer it stands for.
            headers = request.headers.copy()
            headers["Authorization"] = f"Bearer {token}"
            return await handler(request.clone(headers=headers))
        if path == "/":
            return _login(401, "This screen is not logged in.")
        return web.json_response({"error": "missing or wrong bearer token or wallboard cookie"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="qmon"'})

    return wallboard_auth


async def page(request: web.Request) -> web.Response:
    """The wallboard page (HTML; data arrives by server-sent events)."""
    return web.Response(body=_static("wallboard.html"), content_type="text/html",
                        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"})


async def static(request: web.Request) -> web.Response:
    """The page's stylesheet and script, from the package."""
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    return web.Response(body=_static(name), content_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


def add_wallboard_routes(app: web.Application, wb: Wallboard, token: str, clock: Callable[[], float]) -> None:
    """Mount ``/``, ``/wallboard/{name}``, ``/api/v1/wallboard`` (+ ``/events``) on ``app`` (before it starts)."""
    app[WB] = wb
    app.middlewares.insert(0, _auth_middleware(token, wb.cookie_max_age_s))
    closing = asyncio.Event()

    async def on_shutdown(_: web.Application) -> None:
        closing.set()  # open event streams end now, so a shutdown never waits for a TV

    app.on_shutdown.append(on_shutdown)

    async def board(request: web.Request) -> web.Response:
        query(request)  # no parameters: anything given is a 400, as on every endpoint
        return web.json_response(snapshot(wb, clock()), headers={"Cache-Control": "no-store"})

    async def events(request: web.Request) -> web.StreamResponse:
        query(request)
        async with sse_response(request, headers={"Cache-Control": "no-store"}) as sse:
            with contextlib.suppress(ConnectionError):  # the screen went away: nothing to clean up
                while sse.is_connected() and not closing.is_set():
                    await sse.send(json.dumps(snapshot(wb, clock()), separators=(",", ":")), event="snapshot",
                                   retry=int(wb.refresh_s * 1000) + 1000)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closing.wait(), wb.refresh_s)
        return sse

    app.router.add_get("/", page)
    app.router.add_get(STATIC_PREFIX + "{name}", static)
    app.router.add_get("/api/v1/wallboard", board)
    app.router.add_get("/api/v1/wallboard/events", events)
