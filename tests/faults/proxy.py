"""A TCP proxy on 127.0.0.1 in front of the real PostgreSQL that can go silent (blackhole) and come back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.support.store import PG_HOST, PG_PORT, free_port


class Blackhole:
    """Forwards both ways; :meth:`silence` keeps accepting and reading but forwards nothing, in either direction
    (a firewall dropping packets, a hung server); :meth:`restore` cuts the stalled connections and forwards again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.silent = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                if not self.silent:
                    w.write(data)
                    await w.drain()
        w.close()

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self._writers.add(cw)
        if self.silent:  # accept, read, never answer
            with contextlib.suppress(Exception):
                while await cr.read(65536):
                    pass
            return
        try:
            sr, sw = await asyncio.open_connection(PG_HOST, PG_PORT)
        except OSError:
            cw.close()
            return
        self._writers.add(sw)
        await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))

    async def start(self) -> None:
        """Listen."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    def silence(self) -> None:
        """From now on nothing goes through, and nobody is told."""
        self.silent = True

    def restore(self) -> None:
        """Forward again; connections that went silent are reset (their protocol state is lost anyway)."""
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()
        self.silent = False

    async def close(self) -> None:
        """Stop listening and cut everything."""
        self.restore()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def blackhole() -> AsyncIterator[Blackhole]:
    """A started :class:`Blackhole`, closed at the end."""
    b = Blackhole()
    await b.start()
    try:
        yield b
    finally:
        await b.close()
