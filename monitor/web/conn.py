"""HTTP connections below the application: what aiohttp does before (or instead of) our handlers.

- Parser-level errors (a 9000-byte request line, 20,000 header fields) are answered by aiohttp's
  ``RequestHandler.handle_error``, which no application signal reaches: :class:`GuardedHandler` adds the same
  security headers there (no ``Server: Python/3.x aiohttp/3.x`` banner, ``no-store``, ``nosniff``).
- A request's headers must arrive within :data:`HEADER_TIMEOUT_S` of the connection (or of the previous response):
  aiohttp's keep-alive timer covers exactly "waiting for a request", so it is that timer, set short (aiohttp's
  default is an hour: 900 half-sent requests were all still open after 15 s).
- At most :data:`MAX_CONNECTIONS` connections (:class:`ConnGuard`): a newcomer beyond it makes room by closing the
  oldest connection that is only waiting for a request (as the FastAGI server drops the oldest idle one); when
  every connection is inside a request (wallboard streams), the newcomer is closed at once. Counted, logged once
  and then at most once a minute with the count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("qmon.http")

#: On every response the app sends: the API returns caller numbers (no cache may keep them, no browser may sniff
#: JSON into HTML), and the Server header says nothing about versions (aiohttp would add "Python/3.x aiohttp/3.x").
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Server": "qmon"}
#: Seconds a connection may take to send a request's headers (from its start, or from the previous response).
HEADER_TIMEOUT_S = 10.0
#: Connections at once (Prometheus, a few API clients, one wallboard stream per screen).
MAX_CONNECTIONS = 256


class ConnGuard:
    """The open HTTP connections, oldest first, bounded at ``max_connections``; ``dropped`` counts connections
    closed to make room (they were waiting for a request), ``refused`` newcomers closed at once (no room)."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_connections = max_connections
        self.interval_s, self.clock = interval_s, clock
        self.open: dict[GuardedHandler, None] = {}
        self.dropped = 0
        self.refused = 0
        self._since = 0
        self._next: float | None = None

    def opened(self, h: GuardedHandler) -> bool:
        """A connection was made: make room if needed; False when ``h`` must be closed (every one is busy)."""
        if len(self.open) >= self.max_connections:
            victim = next((o for o in self.open if not o.busy), None)
            if victim is None:
                self.refused += 1
                self._hit()
                return False
            del self.open[victim]
            victim.force_close()
            self.dropped += 1
            self._hit()
        self.open[h] = None
        return True

    def closed(self, h: GuardedHandler) -> None:
        """The connection is gone."""
        self.open.pop(h, None)

    def _hit(self) -> None:
        self._since += 1
        now = self.clock()
        if self._next is None:
            log.warning("HTTP: %d connections open (the most qmon keeps): the oldest one waiting for a request is "
                        "closed for a newcomer, or the newcomer when every one is busy", self.max_connections)
        elif now >= self._next:
            log.warning("HTTP: %d more connection(s) closed at the limit of %d in the last %.0f s", self._since,
                        self.max_connections, self.interval_s)
        else:
            return
        self._since, self._next = 0, now + self.interval_s


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol, counted by a :class:`ConnGuard`, with our headers on its error pages.

    ``busy`` is set by the application while a request of this connection is being handled.
    """

    def __init__(self, manager: web.Server, *, guard: ConnGuard, **kw: Any) -> None:
        super().__init__(manager, **kw)
        self.guard = guard
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection; close it at once when there is no room."""
        super().connection_made(transport)
        if not self.guard.opened(self):
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Uncount it."""
        self.guard.closed(self)
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's error page (400 for a request it cannot parse), with :data:`SECURITY_HEADERS`."""
        resp = super().handle_error(request, status, exc, message)
        resp.headers.update(SECURITY_HEADERS)
        return resp


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedHandler` (aiohttp's TCPSite always builds its own)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnGuard, **handler_kw: Any) -> None:
        super().__init__(runner)
        self.host, self.port = host, port
        self.guard = guard
        self.handler_kw = handler_kw
        self._listener: asyncio.Server | None = None

    @property
    def name(self) -> str:
        """The URL it serves."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen."""
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None  # set by runner.setup()
        self._listener = await loop.create_server(
            lambda: GuardedHandler(server, loop=loop, guard=self.guard, **self.handler_kw), self.host, self.port,
            reuse_address=True)
        self._server = self._listener  # BaseSite.stop() closes it

    @property
    def bound_port(self) -> int:
        """The port listened on (``port=0`` picks one)."""
        socks = self._listener.sockets if self._listener is not None else ()
        return int(socks[0].getsockname()[1]) if socks else self.port
