"""The FastAGI listener: our own accept loop, so running out of file descriptors is one log line, not a flood,
and :class:`Admission`, which bounds the connections that are not (yet) a survey.

asyncio's ``start_server`` logs every ``accept()`` that fails with EMFILE as an ERROR with a traceback (measured:
1,256 of them in 10 s with ``ulimit -n 1024`` and 1,100 idle connections) and stops accepting for a second each
time, delaying real surveys. Here the failure is counted, logged once (then once a minute with a count), the
server is asked to free a descriptor (:class:`Acceptor`'s ``on_exhausted``), and accepting resumes at once when
it could, else after a short backoff (50 ms doubling to 1 s).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable

#: accept() failures that mean "out of a resource" (asyncio's own list): back off, never crash.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Descriptors the rest of the daemon may hold besides FastAGI connections (AMI, HTTP, database, journal, logs).
FD_RESERVE = 100


class Throttle:
    """A log line for the first event at once, then at most one per ``interval_s`` (s) with the count since."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = logger
        self.interval_s = interval_s
        self.clock = clock
        self.count = 0  # since start
        self._since_line = 0
        self._next: float | None = None

    def hit(self, first: str, again: str, *args: object) -> None:
        """Count one event; log ``first % args`` the first time, later ``again % (count since, s, *args)``."""
        self.count += 1
        self._since_line += 1
        now = self.clock()
        if self._next is None:
            self.log.warning(first, *args)
        elif now >= self._next:
            self.log.warning(again, self._since_line, self.interval_s, *args)
        else:
            return
        self._since_line = 0
        self._next = now + self.interval_s


def fd_budget(max_sessions: int) -> tuple[int, int]:
    """(descriptors the FastAGI server may need at most, the process's soft RLIMIT_NOFILE; -1 = unlimited).

    Needed = one per session plus as many connections waiting for their headers or a goodbye, plus FD_RESERVE.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 2 * max_sessions + FD_RESERVE, (-1 if soft == resource.RLIM_INFINITY else int(soft))


def listen(host: str, port: int, backlog: int = 128) -> list[socket.socket]:
    """Non-blocking listening sockets for every address of ``host`` (as asyncio binds them); OSError if none.

    ``port=0`` picks a free port for the first address and reuses it for the others.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    try:
        for af, kind, proto, _, addr in dict.fromkeys(infos):
            s = socket.socket(af, kind, proto)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if af == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 address gets its own socket
            if port == 0 and len(socks) > 1:
                addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
            s.bind(addr)
            s.listen(backlog)
            s.setblocking(False)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


class Acceptor:
    """One accept loop per listening socket, handing each connected socket to ``on_conn``.

    ``on_exhausted`` is called on EMFILE/ENFILE/ENOBUFS/ENOMEM: the server drops an idle connection, freeing a
    descriptor for a real one, and returns True (retry at once) or finds none and returns False (back off).
    ``stats["accept_errors"]`` counts every failed accept.
    """

    def __init__(self, socks: list[socket.socket], on_conn: Callable[[socket.socket], None],
                 on_exhausted: Callable[[], bool], logger: logging.Logger, stats: dict[str, int]) -> None:
        self.socks = socks
        self.on_conn = on_conn
        self.on_exhausted = on_exhausted
        self.stats = stats
        self.throttle = Throttle(logger)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start accepting (one named task per socket)."""
        self._tasks = [asyncio.create_task(self._loop(s), name=f"survey-accept-{i}") for i, s in enumerate(self.socks)]

    async def close(self) -> None:
        """Stop accepting and close the listening sockets."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self.socks:
            s.close()

    async def _loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.05
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                self.stats["accept_errors"] = self.stats.get("accept_errors", 0) + 1
                if exc.errno in RESOURCE_ERRNOS:
                    why = f"{errno.errorcode.get(exc.errno or 0, '?')}: {exc.strerror}"
                    self.throttle.hit("survey: cannot accept FastAGI connections (%s); dropping idle connections "
                                      "and retrying; survey.max_sessions or the descriptor limit (ulimit -n, "
                                      "LimitNOFILE=) needs a look",
                                      "survey: %d more FastAGI accept failure(s) in the last %.0f s (%s)", why)
                    if self.on_exhausted():
                        await asyncio.sleep(0.005)  # a dropped connection's descriptor is closed in a loop turn
                    else:
                        await asyncio.sleep(backoff)
                        backoff = min(1.0, backoff * 2)
                else:  # ECONNABORTED and the like: that peer is gone, the next one is not
                    self.throttle.hit("survey: FastAGI accept failed (%s)",
                                      "survey: %d more FastAGI accept failure(s) in the last %.0f s (%s)",
                                      f"{type(exc).__name__}: {exc.strerror or exc}")
                    await asyncio.sleep(0.01)
                continue
            backoff = 0.05
            conn.setblocking(False)
            self.on_conn(conn)


class Admission:
    """The connections not in a survey, oldest first: waiting for their headers (may be dropped to make room for a
    newcomer: Asterisk sends its request at once, an idle peer is not Asterisk) or held while they hear the overload
    goodbye (never dropped). At most ``max_sessions`` of them, so with ``max_sessions`` surveys the server holds
    at most twice that many descriptors whatever peers do. ``spawn`` starts a connection's task; ``on_no_room``
    is told when a newcomer had to be closed at once (every slot held).
    """

    def __init__(self, max_sessions: int, spawn: Callable[[socket.socket], asyncio.Task[None]],
                 on_no_room: Callable[[], None], logger: logging.Logger, stats: dict[str, int]) -> None:
        self.max_sessions = max_sessions
        self.spawn = spawn
        self.on_no_room = on_no_room
        self.stats = stats
        self._idle = Throttle(logger)
        self._waiting: dict[asyncio.Task[None], bool] = {}  # task -> may be dropped
        self._room = max_sessions  # lowered for a minute when the process runs out of descriptors
        self._room_until = 0.0

    def on_conn(self, sock: socket.socket) -> None:
        """A connection was accepted: start its task (waiting for headers), or close it at once if no room."""
        self.stats["connections"] = self.stats.get("connections", 0) + 1
        room = self._room if time.monotonic() < self._room_until else self.max_sessions
        if len(self._waiting) >= room and not self.drop_idle():
            # Closing now makes AGI() return without a status: the dialplan plays its own goodbye.
            self.stats["rejected_no_room"] = self.stats.get("rejected_no_room", 0) + 1
            self.on_no_room()
            sock.close()
            return
        task = self.spawn(sock)
        self._waiting[task] = True

        def done(t: asyncio.Task[None]) -> None:
            self._waiting.pop(t, None)
            if sock.fileno() >= 0 and t.cancelled():
                sock.close()  # cancelled before its stream took the socket over

        task.add_done_callback(done)

    def release(self, task: asyncio.Task[None] | None) -> None:
        """``task`` has its headers, finished its goodbye or is gone: it no longer counts."""
        if task is not None:
            self._waiting.pop(task, None)

    def hold(self, task: asyncio.Task[None] | None) -> None:
        """``task`` hears the overload goodbye: it counts against the bound and is never dropped."""
        if task is not None:
            self._waiting[task] = False

    def exhausted(self) -> bool:
        """accept() ran out of descriptors (the limit is below what max_sessions needs, or others hold them):
        keep fewer connections waiting for a minute, so newcomers make room before accept() fails again."""
        self._room = max(min(8, self.max_sessions), min(len(self._waiting), self._room) - 1)
        self._room_until = time.monotonic() + 60.0
        return self.drop_idle()

    def drop_idle(self) -> bool:
        """Drop the oldest connection still waiting for its headers, freeing a descriptor; False if there is none."""
        for task, idle in self._waiting.items():
            if idle:
                del self._waiting[task]
                task.cancel()
                self.stats["idle_dropped"] = self.stats.get("idle_dropped", 0) + 1
                self._idle.hit("survey: dropped a FastAGI connection that sent no request, to make room",
                               "survey: %d more idle FastAGI connection(s) dropped in the last %.0f s")
                return True
        return False
