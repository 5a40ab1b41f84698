"""A minimal AMI TCP server for the callback tests: banner, Login, records actions, answers Originate.

Each ``Originate`` gets ``Response: Success`` or ``Response: Error`` from the ``originate_results`` script
(default Success). The client side is a tiny real AMI client (:class:`AmiClient`), standing in for the AMI
engineer's ``send_action``.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _encode(msg: dict[str, Any]) -> bytes:
    lines = []
    for k, v in msg.items():
        for item in v if isinstance(v, list) else [v]:
            lines.append(f"{k}: {item}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    msg: dict[str, Any] = {}
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode().rstrip("\r\n")
        if not text:
            if msg:
                return msg
            continue
        k, _, v = text.partition(":")
        k, v = k.strip(), v.strip()
        if k in msg:  # repeated headers (Variable) become a list, as in the transcripts' actions.jsonl
            msg[k] = [*msg[k], v] if isinstance(msg[k], list) else [msg[k], v]
        else:
            msg[k] = v
    return msg


class SurveyAmiServer:
    """Records every action; answers Login, Ping and Originate."""

    def __init__(self, originate_results: list[str] | None = None, secret: str = "s3cret") -> None:
        self.actions: list[dict[str, Any]] = []
        self.originate_results = list(originate_results or [])
        self.secret = secret
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def originates(self) -> list[dict[str, Any]]:
        """The Originate actions received, in order."""
        return [a for a in self.actions if a.get("Action", "").lower() == "originate"]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        authed = False
        try:
            while (msg := await _read_message(reader)) is not None:
                self.actions.append(msg)
                action = str(msg.get("Action", "")).lower()
                aid = msg.get("ActionID", "")
                if action == "login":
                    authed = msg.get("Secret") == self.secret
                    resp = {"Response": "Success" if authed else "Error", "ActionID": aid,
                            "Message": "Authentication accepted" if authed else "Authentication failed"}
                elif not authed:
                    resp = {"Response": "Error", "ActionID": aid, "Message": "Permission denied"}
                elif action == "originate":
                    result = self.originate_results.pop(0) if self.originate_results else "Success"
                    resp = {"Response": result, "ActionID": aid,
                            "Message": "Originate successfully queued" if result == "Success" else "Originate failed"}
                else:
                    resp = {"Response": "Success", "ActionID": aid, "Ping": "Pong"}
                writer.write(_encode(resp))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


class AmiClient:
    """A tiny real AMI client: login, then ``send_action(dict) -> dict`` matched by ActionID."""

    def __init__(self, port: int, username: str = "qmon", secret: str = "s3cret") -> None:
        self.port, self.username, self.secret = port, username, secret
        self._n = 0
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> dict[str, Any]:
        """Connect, read the banner, log in."""
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self._reader.readline()
        return await self.send_action({"Action": "Login", "Username": self.username, "Secret": self.secret})

    async def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Send one action and return its response."""
        assert self._reader is not None and self._writer is not None
        async with self._lock:
            self._n += 1
            aid = action.get("ActionID") or f"t-{self._n}"
            self._writer.write(_encode({**action, "ActionID": aid}))
            await self._writer.drain()
            while True:
                msg = await _read_message(self._reader)
                if msg is None:
                    raise ConnectionError("AMI closed")
                if msg.get("ActionID") == aid:
                    return msg

    async def close(self) -> None:
        """Disconnect."""
        if self._writer is not None:
            self._writer.close()
