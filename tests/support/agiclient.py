"""A test FastAGI client: plays Asterisk's side of a real FastAGI TCP conversation.

A scripted caller answers each GET DATA with digits, a timeout, or a hang-up; STREAM FILE / SET VARIABLE /
VERBOSE get Asterisk's replies. It records every command and the round-trip latency (reply sent ->
next command received), so tests can assert on what the survey server asked and how fast.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

HANGUP = "HANGUP"  # script item: the caller hangs up during this prompt
TIMEOUT = None  # script item: the caller types nothing


def agi_headers(uniqueid: str, linkedid: str, queue: str = "support", lang: str = "en",
                callerid: str = "5551001", script: str = "csat") -> dict[str, str]:
    """The request headers Asterisk 22 sends for AGI(agi://host:4573/csat,<linkedid>,<queue>,<lang>)."""
    return {
        "agi_network": "yes", "agi_network_script": script, "agi_request": f"agi://127.0.0.1:4573/{script}",
        "agi_channel": "PJSIP/trunk-00000001", "agi_language": lang, "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid, "agi_version": "22.11.0", "agi_callerid": callerid,
        "agi_calleridname": "Caller", "agi_callingpres": "0", "agi_callingani2": "0", "agi_callington": "0",
        "agi_callingtns": "0", "agi_dnid": "100", "agi_rdnis": "unknown", "agi_context": "qmon-queue",
        "agi_extension": queue, "agi_priority": "9", "agi_enhanced": "0.0", "agi_accountcode": "",
        "agi_threadid": "140000000000000", "agi_arg_1": linkedid, "agi_arg_2": queue, "agi_arg_3": lang,
    }


def asterisk_reply(cmd: str, variables: dict[str, str]) -> str:
    """Asterisk 22's reply to a command other than GET DATA (no newline); SET VARIABLE is noted in ``variables``."""
    if cmd.startswith("STREAM FILE"):
        return "200 result=0 endpos=16000"
    if cmd.startswith("SET VARIABLE"):
        _, _, name, value = cmd.split(" ", 3)
        variables[name] = value.strip('"')
        return "200 result=1"
    if cmd.startswith("VERBOSE"):
        return "200 result=1"
    return "510 Invalid or unknown command"


@dataclass
class Session:
    """What happened on one connection."""

    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, reply sent -> next command received
    closed_by_server: bool = False

    def prompts(self) -> list[str]:
        """The sound files played or asked, in order."""
        return [c.split()[2] for c in self.commands if c.startswith(("GET DATA", "STREAM FILE"))]


async def run_caller(port: int, headers: dict[str, str], script: list[str | None], *,
                     host: str = "127.0.0.1", timeout_s: float = 10.0, think_s: float = 0.0) -> Session:
    """Connect, send headers, answer commands per ``script`` (one item per GET DATA) until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    s = Session()
    answers = list(script)
    dead = False
    writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
    await writer.drain()
    sent_at: float | None = None
    try:
        while True:
            async with asyncio.timeout(timeout_s):
                line = await reader.readline()
            if not line:
                s.closed_by_server = True
                break
            if sent_at is not None:
                s.latencies.append(time.perf_counter() - sent_at)
                sent_at = None
            cmd = line.decode().strip()
            s.commands.append(cmd)
            if dead:
                reply = "511 Command Not Permitted on a dead channel or intercept routine"
            elif cmd.startswith("GET DATA"):
                if think_s:
                    # The caller listens to the prompt and presses a key: callers' commands spread in time.
                    await asyncio.sleep(random.uniform(0, think_s))
                    sent_at = None
                ans = answers.pop(0) if answers else TIMEOUT
                if ans == HANGUP:
                    dead = True
                    writer.write(b"HANGUP\n")
                    reply = "200 result=-1"
                elif ans is TIMEOUT:
                    reply = "200 result= (timeout)"
                else:
                    reply = f"200 result={ans}"
            else:
                reply = asterisk_reply(cmd, s.variables)
            writer.write(reply.encode() + b"\n")
            await writer.drain()
            sent_at = time.perf_counter()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return s


async def _many(port: int, n: int, think_s: float) -> dict[str, object]:
    t0 = time.perf_counter()
    sessions = await asyncio.gather(*(
        run_caller(port, agi_headers(f"U{i}", f"L{i}", callerid=f"555{i:04d}"),
                   ["9", str(1 + i % 5)] if i % 4 == 0 else [str(1 + i % 5)], think_s=think_s)
        for i in range(n)))
    return {"wall": time.perf_counter() - t0, "latencies": [x for s in sessions for x in s.latencies],
            "closed": sum(s.closed_by_server for s in sessions),
            "csat": sorted(int(s.variables.get("QMON_CSAT", "0")) for s in sessions)}


if __name__ == "__main__":
    # python -m tests.support.agiclient PORT N THINK_S: N concurrent callers from their own process (like Asterisk).
    import json
    import sys

    print(json.dumps(asyncio.run(_many(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))))
