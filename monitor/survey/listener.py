"""The FastAGI listener: our own accept loop, so running out of file descriptors is one log line, not a flood,
and :class:`Admission`, which bounds the connections that are not (yet) a survey.

asyncio's ``start_server`` logs every ``accept()`` that fails with EMFILE as an ERROR with a traceback (measured:
1,256 of them in 10 s with ``ulimit -n 1024`` and 1,100 idle connections) and stops accepting for a second each
time, delaying real surveys. Here the failure is counted, logged once (then once a minute with a count), the
server is asked to free a descriptor (:class:`Acceptor`'s ``on_exhausted``), and accepting resumes at once when
it could, else after a short backoff (50 ms doubling to 1 s).

A burst of callers (500 surveys starting at once, measured by ``bench/load.py agi``) must neither be refused by
the kernel nor starve the surveys already running. The listen backlog covers every connection the server may
hold (:func:`backlog_for`; with the old 128, 272 of 500 connects were dropped and retried by the caller's kernel
a second later: a second of silence). The accept loop takes one connection per event-loop turn, so the replies of
running surveys are read between two newcomers instead of after all of them (p99 round trip 16-30 -> 7-10 ms, for
one more loop turn per connection, ~0.1 ms of CPU). The process's descriptor table is grown at start-up
(:func:`grow_fd_table`): growing it during a burst blocked the loop 8-16 ms in ``accept()``.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import resource
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import SupportsIndex

#: accept() failures that mean "out of a resource" (asyncio's own list): back off, never crash.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Descriptors the rest of the daemon may hold besides FastAGI connections (AMI, HTTP, database, journal, logs).
FD_RESERVE = 100
#: How long (s) closing may spend making room for the connections still queued when out of descriptors.
DRAIN_S = 1.0


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


def grow_fd_table(sock: socket.socket, need: int, limit: int) -> None:
    """Make the kernel's descriptor table of this process hold ``need`` descriptors now (capped at ``limit``, the
    soft RLIMIT_NOFILE; -1 = unlimited), so that accepting a burst never grows it.

    Linux grows the table by doubling when a new descriptor does not fit, and in a process with threads each
    growth waits for an RCU grace period (``synchronize_rcu`` in ``expand_fdtable``): measured 8-16 ms per
    doubling here, the event loop blocked in ``accept()`` while running surveys wait. The table never shrinks.
    """
    top = (min(need, limit) if limit >= 0 else need) - 1
    try:  # the lowest free descriptor >= top: never one in use; closed at once
        os.close(fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, max(0, top)))
    except OSError:  # out of descriptors already: the table is as large as it can get
        pass


def backlog_for(max_sessions: int) -> int:
    """The listen backlog (connections) for a server of ``max_sessions``: all it may hold, at least 128 (the
    kernel caps it at ``net.core.somaxconn``)."""
    return max(128, 2 * max_sessions)


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
        """Stop accepting and close the listening sockets; the connections the kernel had already queued are
        handed to ``on_conn`` first (closing a listening socket resets them: the caller would hear nothing)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self.socks:
            await self._drain(s)
            # No await since the queue was found empty; the kernel still completes handshakes on its own, so only
            # a connect landing in these microseconds is reset (Asterisk's AGI() then fails: AGISTATUS=FAILURE).
            s.close()

    async def _drain(self, sock: socket.socket) -> None:
        """Hand every connection queued on ``sock`` to ``on_conn``, until accept() finds the queue empty. Out of
        descriptors, idle connections are dropped to make room (their descriptors close in a loop turn) for at
        most DRAIN_S; gives up when none can be dropped (the rest are then reset by the close)."""
        end = time.monotonic() + DRAIN_S
        while True:
            try:
                conn, _ = sock.accept()
            except OSError as exc:  # BlockingIOError: the queue is empty (or the socket is broken: nothing to take)
                if exc.errno not in RESOURCE_ERRNOS:
                    return
                self.stats["accept_errors"] = self.stats.get("accept_errors", 0) + 1
                if time.monotonic() >= end or not self.on_exhausted():
                    return
                await asyncio.sleep(0.005)
                continue
            conn.setblocking(False)
            self.on_conn(conn)

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
            # sock_accept returns at once while connections are queued: without a turn here a burst is taken
            # in one go, and every newcomer's set-up runs before any running survey's reply is read.
            await asyncio.sleep(0)


def request_buffered(head: bytes | bytearray) -> bool:
    """True when ``head`` (a connection's first bytes) holds a whole FastAGI request: lines up to a blank line."""
    body = bytes(head).lstrip(b"\r\n")  # read_headers tolerates leading blank lines
    return b"\n\n" in body or b"\n\r\n" in body


class HeadReader(asyncio.StreamReader):
    """A StreamReader that also keeps the first ``keep`` bytes fed to it: whether a connection's request has
    arrived can then be told without reading it (:class:`Admission` must not drop a connection that sent one)."""

    def __init__(self, keep: int, limit: int) -> None:
        super().__init__(limit=limit)
        self.keep = keep
        self.head = bytearray()

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        """Remember the first bytes, then buffer as usual."""
        if len(self.head) < self.keep:
            self.head += bytes(data)[: self.keep - len(self.head)]
        super().feed_data(data)


async def open_stream(sock: socket.socket, limit: int) -> tuple[HeadReader, asyncio.StreamWriter]:
    """``asyncio.open_connection(sock=...)`` for an accepted socket, with a :class:`HeadReader`."""
    loop = asyncio.get_running_loop()
    reader = HeadReader(limit, limit)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock=sock)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


@dataclass
class _Waiting:
    sock: socket.socket
    droppable: bool = True  # False while it hears the overload goodbye
    reader: HeadReader | None = None  # once its task opened the stream


class Admission:
    """The connections not in a survey, oldest first: waiting for their headers or held while they hear the
    overload goodbye (never dropped), with every connection of the server bounded at ``2 * max_sessions`` (the
    descriptor budget). Past ``max_sessions`` waiting, a newcomer makes room by dropping the oldest *idle* one:
    one whose request has not arrived (Asterisk sends its request at once; an idle peer is not Asterisk). A
    connection whose request is already buffered is never dropped but read: so a burst of up to
    ``2 * max_sessions`` callers at once all get a survey or the overload goodbye. ``spawn`` starts a connection's
    task; ``on_no_room`` is told when a newcomer had to be closed at once (every slot held).
    """

    def __init__(self, max_sessions: int, spawn: Callable[[socket.socket], asyncio.Task[None]],
                 on_no_room: Callable[[], None], logger: logging.Logger, stats: dict[str, int]) -> None:
        self.max_sessions = max_sessions
        self.spawn = spawn
        self.on_no_room = on_no_room
        self.stats = stats
        self._idle = Throttle(logger)
        self._waiting: dict[asyncio.Task[None], _Waiting] = {}
        self._live = 0  # every connection's task not finished yet (surveys included): its descriptors
        self._room = max_sessions  # lowered for a minute when the process runs out of descriptors
        self._room_until = 0.0

    def on_conn(self, sock: socket.socket) -> None:
        """A connection was accepted: start its task (waiting for headers), or close it at once if no room."""
        self.stats["connections"] = self.stats.get("connections", 0) + 1
        strict = time.monotonic() < self._room_until  # out of descriptors lately: no more than room waiting
        room = self._room if strict else self.max_sessions
        full = self._live >= 2 * self.max_sessions or (strict and len(self._waiting) >= room)
        if (full or len(self._waiting) >= room) and not self.drop_idle() and full:
            # Closing now makes AGI() return without a status: the dialplan plays its own goodbye.
            self.stats["rejected_no_room"] = self.stats.get("rejected_no_room", 0) + 1
            self.on_no_room()
            sock.close()
            return
        task = self.spawn(sock)
        self._waiting[task] = _Waiting(sock)
        self._live += 1

        def done(t: asyncio.Task[None]) -> None:
            self._live -= 1
            self._waiting.pop(t, None)
            if sock.fileno() >= 0 and t.cancelled():
                sock.close()  # cancelled before its stream took the socket over

        task.add_done_callback(done)

    def reading(self, task: asyncio.Task[None] | None, reader: HeadReader) -> None:
        """``task`` opened its stream: what arrives is in ``reader`` (no longer in the socket)."""
        w = self._waiting.get(task) if task is not None else None
        if w is not None:
            w.reader = reader

    def release(self, task: asyncio.Task[None] | None) -> None:
        """``task`` has its headers, finished its goodbye or is gone: it no longer counts as waiting."""
        if task is not None:
            self._waiting.pop(task, None)

    def hold(self, task: asyncio.Task[None] | None) -> None:
        """``task`` hears the overload goodbye: it counts against the bound and is never dropped."""
        if task is not None:
            w = self._waiting.get(task)
            if w is not None:
                w.droppable = False

    def exhausted(self) -> bool:
        """accept() ran out of descriptors (the limit is below what max_sessions needs, or others hold them):
        keep fewer connections waiting for a minute, so newcomers make room before accept() fails again."""
        self._room = max(min(8, self.max_sessions), min(len(self._waiting), self._room) - 1)
        self._room_until = time.monotonic() + 60.0
        return self.drop_idle()

    def drop_idle(self) -> bool:
        """Drop the oldest connection whose request has not arrived, freeing a descriptor; False if none."""
        for task, w in self._waiting.items():
            if w.droppable and not self._request_arrived(w):
                del self._waiting[task]
                task.cancel()
                self.stats["idle_dropped"] = self.stats.get("idle_dropped", 0) + 1
                self._idle.hit("survey: dropped a FastAGI connection that sent no request, to make room",
                               "survey: %d more idle FastAGI connection(s) dropped in the last %.0f s")
                return True
        return False

    @staticmethod
    def _request_arrived(w: _Waiting) -> bool:
        """Its whole request is buffered: in its reader, or still in the kernel (its task has not run yet)."""
        head = bytearray(w.reader.head) if w.reader is not None else bytearray()
        keep = w.reader.keep if w.reader is not None else 65_536
        try:  # MSG_PEEK: the bytes stay for the reader
            head += w.sock.recv(max(1, keep - len(head)), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # closed or reset: nothing worth keeping
            return False
        return request_buffered(head)
