"""A FastAGI peer that answers as Asterisk 22 did, built from the recordings in ``fixtures/agi22/``.

The recordings (``<scenario>.agi.jsonl``, one JSON object per TCP chunk, both directions, from a byte-logging
proxy between Asterisk 22's ``AGI()`` and qmon) give two things:

* what the caller did, per conversation (:func:`caller_of`): the keys typed during each ``GET DATA``, a hang-up
  during a prompt or between two commands;
* how Asterisk answers (:class:`Asterisk22`): the reply texts byte for byte (``200 result= (timeout)``,
  ``200 result=`` for a lone ``#``, ``200 result=-1`` then unsolicited ``HANGUP`` lines, ``511 Command Not
  Permitted on a dead channel or intercept routine``, ``200 result=0 endpos=N``), the request headers in the
  2-3 TCP chunks they arrived in, and ``GET DATA``'s key handling as res_agi/app.c do it (``ast_readstring``:
  up to ``max_digits``, ``#`` ends input and is not returned, keys typed after the end stay buffered and
  reach the next command: the recorded "10#" spill).

``tests/test_survey_agi22.py`` checks the model against every recorded command first, then drives qmon's real
:class:`~monitor.survey.server.SurveyServer` over TCP with it. Time: replies may sleep (``time_scale`` x the
recorded length) and a shared :class:`VirtualClock` may advance by what the call would really take, so a test
can hold qmon to ``max_duration_s`` without waiting 90 s.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures" / "agi22"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
RATE = 8000  # endpos is in samples; the prompts are 8 kHz
PRESS_S = 1.75  # recorded: a key typed during a prompt arrived ~1.75 s after GET DATA was sent


@dataclass
class Exchange:
    """One command qmon sent and what Asterisk sent back before qmon's next command (or its close)."""

    command: str
    replies: list[str]  # reply lines, in order, unsolicited HANGUP lines included


@dataclass
class Recorded:
    """One recorded FastAGI conversation."""

    scenario: str
    conn: int
    header_chunks: list[str]
    exchanges: list[Exchange]
    after_close: list[str]  # lines Asterisk sent after qmon closed

    @property
    def headers(self) -> dict[str, str]:
        """The request headers as a dict."""
        out = {}
        for line in "".join(self.header_chunks).splitlines():
            k, _, v = line.partition(":")
            if k:
                out[k] = v.strip()
        return out

    def variables(self) -> dict[str, str]:
        """The variables qmon set (what the dialplan saw)."""
        out = {}
        for ex in self.exchanges:
            if ex.command.startswith("SET VARIABLE "):
                _, _, name, value = ex.command.split(" ", 3)
                out[name] = value.strip('"')
        return out

    def expected(self) -> tuple[str, int | None, int | None, int | None]:
        """(status, csat, nps, ces) as the recording says: the variables set, else the keys typed."""
        v = self.variables()
        scores: dict[str, int] = {}
        ranges = {"nps-question": ("nps", 0, 10), "ces-question": ("ces", 1, 5)}
        for ex in self.exchanges:
            name = ex.command.split()[2] if ex.command.startswith("GET DATA") else ""
            base = name.rsplit("/", 1)[-1]
            if base in ranges:
                key, lo, hi = ranges[base]
                digits = _result(ex.replies)
                if digits.isdigit() and lo <= int(digits) <= hi:
                    scores[key] = int(digits)
        csat = int(v["QMON_CSAT"]) if "QMON_CSAT" in v else None
        return v.get("QMON_SURVEY_STATUS", "hangup"), csat, scores.get("nps"), scores.get("ces")


def _result(replies: list[str]) -> str:
    for r in replies:
        if r.startswith("200 result="):
            return r[len("200 result="):].split(" ")[0]
    return ""


def load(scenario: str) -> list[Recorded]:
    """Every conversation of one recorded scenario, in connection order."""
    by_conn: dict[int, list[dict[str, object]]] = defaultdict(list)
    for line in (FIXTURES / f"{scenario}.agi.jsonl").read_text().splitlines():
        o = json.loads(line)
        by_conn[int(o["conn"])].append(o)
    out = []
    for conn, items in sorted(by_conn.items()):
        rec = Recorded(scenario, conn, [], [], [])
        closed = False
        for o in items:
            text = str(o.get("text", ""))
            if o["dir"] == "event":
                closed = closed or str(o.get("event", "")).startswith("qmon closed")
            elif o["dir"] == "qmon>ast":
                rec.exchanges.extend(Exchange(c, []) for c in text.splitlines())
            elif not "".join(rec.header_chunks).endswith("\n\n"):
                rec.header_chunks.append(text)
            elif closed or not rec.exchanges:
                rec.after_close.extend(text.splitlines())
            else:
                rec.exchanges[-1].replies.extend(text.splitlines())
        out.append(rec)
    return out


SCENARIOS = ("a_csat4", "b_invalid_then_valid", "b_noinput_twice", "b_decline_star", "b_hangup_during_prompt",
             "b_hangup_during_thanks", "b_hangup_between_commands", "c_nps_ces", "d_qmon_slow", "e_callback",
             "e_callback_late_answer", "g_kick", "g_restart", "h_load")
"""Scenarios in which qmon held a conversation (``d_qmon_hung*``: the proxy never let one start)."""


def conversations() -> list[Recorded]:
    """Every recorded conversation qmon held."""
    return [r for s in SCENARIOS for r in load(s)]


# -- the caller -------------------------------------------------------------------------------------


@dataclass
class Caller:
    """What the caller does: keys per GET DATA ("4", "10#", "" nothing, "!" hangs up during the prompt) and,
    per STREAM FILE, "" listen, "!<endpos>" hang up there, "x" gone before it starts (HANGUP, then 511)."""

    keys: list[str] = field(default_factory=list)
    plays: list[str] = field(default_factory=list)
    hangup_lines: int = 2  # unsolicited HANGUP lines once the channel is gone (recorded: 1 or 2)


def caller_of(rec: Recorded) -> Caller:
    """The caller's actions, read back from Asterisk's replies in a recording."""
    c = Caller()
    full = False  # the previous GET DATA ended at max_digits: a # typed after it stayed buffered
    for ex in rec.exchanges:
        first = next((r for r in ex.replies if r != "HANGUP"), "")
        if ex.command.startswith("GET DATA"):
            max_digits = int(ex.command.split()[-1])
            digits = _result(ex.replies)
            if first == "200 result=-1":
                c.keys.append("!")
            elif first == "200 result=" and full:
                c.keys[-1] += "#"  # served from the buffer: this GET DATA consumed none of the caller's keys
            elif first.endswith("(timeout)"):
                c.keys.append(digits)
            else:
                c.keys.append(digits if len(digits) >= max_digits else digits + "#")
            full = bool(digits) and len(digits) >= max_digits and not first.endswith("(timeout)")
        elif ex.command.startswith("STREAM FILE"):
            if first == DEAD:
                c.plays.append("x")
            elif first.startswith("200 result=-1"):
                c.plays.append("!" + first.rsplit("=", 1)[1])
            else:
                c.plays.append("")
    died = sum(r == "HANGUP" for ex in rec.exchanges for r in ex.replies)
    if "!" in c.keys or any(p.startswith(("!", "x")) for p in c.plays):
        c.hangup_lines = died + sum(r == "HANGUP" for r in rec.after_close)
    return c


def endpos_table() -> dict[str, int]:
    """Recorded ``endpos`` of each prompt played to its end (samples at 8 kHz)."""
    out: dict[str, int] = {}
    for rec in conversations():
        for ex in rec.exchanges:
            first = next((r for r in ex.replies if r != "HANGUP"), "")
            if ex.command.startswith("STREAM FILE") and first.startswith("200 result=0 endpos="):
                out[ex.command.split()[2]] = int(first.rsplit("=", 1)[1])
    return out


# -- Asterisk ---------------------------------------------------------------------------------------


class VirtualClock:
    """Seconds the call has really taken (prompts, digit timeouts), advanced by the peer; qmon's clock."""

    def __init__(self, t: float = 1_796_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Asterisk22:
    """Asterisk 22's side of one AGI() call: answers each command as the recordings show."""

    caller: Caller
    seconds: dict[str, float] = field(default_factory=dict)  # prompt name -> length (s), else from endpos
    time_scale: float = 0.0  # sleep this fraction of what each command really takes
    reply_delay_s: float = 0.0  # extra delay on every reply (d_qmon_slow: a proxy delayed qmon's commands 3 s)
    clock: VirtualClock | None = None
    press_after_prompt: bool = False  # the caller waits for the prompt's end before typing
    dead_set_variable: str = "200 result=1"  # res_agi.c marks SET VARIABLE allowed on a dead channel
    silent: bool = False  # never answer (d_qmon_hung: qmon's commands never reached Asterisk)
    dead: bool = False
    buffer: str = ""
    _gi: int = 0
    _pi: int = 0
    _endpos: dict[str, int] = field(default_factory=endpos_table)

    def _len(self, prompt: str) -> float:
        if prompt in self.seconds:
            return self.seconds[prompt]
        return self._endpos.get(prompt, 3 * RATE) / RATE

    def answer(self, command: str) -> list[tuple[float, str]]:
        """(seconds the call takes before it, line) for each line Asterisk sends in reply to ``command``."""
        if self.silent:
            return []
        words = command.split()
        verb = " ".join(words[:2]).upper()
        if verb == "GET DATA":
            out = self._get_data(words[2], int(words[3]), int(words[4]))
        elif verb == "STREAM FILE":
            out = self._stream_file(words[2])
        elif verb == "SET VARIABLE":
            out = [(0.0, self.dead_set_variable if self.dead else "200 result=1")]
        elif words[:1] == ["VERBOSE"]:
            out = [(0.0, "200 result=1")]
        else:
            out = [(0.0, "510 Invalid or unknown command")]
        if self.reply_delay_s:
            out[0] = (out[0][0] + self.reply_delay_s, out[0][1])
        return out

    def _die(self) -> list[tuple[float, str]]:
        self.dead = True
        return [(0.0, "HANGUP")] * self.caller.hangup_lines

    def _get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> list[tuple[float, str]]:
        if self.dead:
            return [(0.0, DEAD)]
        length, timeout = self._len(prompt), timeout_ms / 1000
        keys, self.buffer = self.buffer, ""
        ends = "#" in keys or len(keys) >= max_digits
        if not ends:  # ast_readstring reads what is buffered, then waits for the caller
            item = self.caller.keys[self._gi] if self._gi < len(self.caller.keys) else ""
            self._gi += 1
            if item == "!":
                return [(min(length, 2.0), "200 result=-1"), *self._die()]
            keys += item
        digits, ended = "", False
        for i, k in enumerate(keys):
            if k == "#":
                ended = True
            else:
                digits += k
                ended = len(digits) >= max_digits
            if ended:
                self.buffer = keys[i + 1:]
                break
        if not ended:  # no # and fewer than max_digits: the digit timeout ends it
            pressed = length + 1.0 if self.press_after_prompt else PRESS_S
            waited = (pressed if digits else length) + timeout
            return [(waited, f"200 result={digits} (timeout)")]
        if ends:  # the buffered keys alone: recorded 0.65 s into the prompt
            return [(min(length, 0.65), f"200 result={digits}")]
        return [(length + 1.0 if self.press_after_prompt else PRESS_S, f"200 result={digits}")]

    def _stream_file(self, prompt: str) -> list[tuple[float, str]]:
        if self.dead:
            return [(0.0, DEAD)]
        self.buffer = ""  # STREAM FILE with no escape digits reads and drops the keys typed meanwhile
        act = self.caller.plays[self._pi] if self._pi < len(self.caller.plays) else ""
        self._pi += 1
        if act == "x":  # recorded: HANGUP 0.84 s after the command, the 511 2.2 s later
            self.dead = True
            return [(0.84, "HANGUP"), (2.16, DEAD)] + [(0.0, "HANGUP")] * (self.caller.hangup_lines - 1)
        if act.startswith("!"):
            pos = int(act[1:])
            return [(pos / RATE, f"200 result=-1 endpos={pos}"), *self._die()]
        length = self._len(prompt)
        pos = self._endpos.get(prompt, round(length * RATE))
        return [(length, f"200 result=0 endpos={pos}")]


# -- the TCP peer -----------------------------------------------------------------------------------


@dataclass
class PeerLog:
    """What one connection saw."""

    commands: list[str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # virtual (or monotonic) time each command arrived
    variables: dict[str, str] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    closed_by_qmon: bool = False
    first_command_after_s: float | None = None  # headers sent -> first command (monotonic s)
    close_after_s: float | None = None  # last reply sent -> qmon's close (monotonic s)


async def _send(writer: asyncio.StreamWriter, text: str) -> None:
    writer.write(text.encode())
    await writer.drain()


async def run_peer(port: int, header_chunks: list[str], ast: Asterisk22, *, host: str = "127.0.0.1",
                   timeout_s: float = 30.0) -> PeerLog:
    """Connect to qmon as Asterisk's AGI() does, answer every command with ``ast``, until qmon closes."""
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    log = PeerLog()
    try:
        for chunk in header_chunks:  # as recorded: 2-3 TCP segments
            await _send(writer, chunk)
            await asyncio.sleep(0.002)
        t_headers = last = time.monotonic()
        while True:
            async with asyncio.timeout(timeout_s):
                raw = await reader.readline()
            if not raw:
                log.closed_by_qmon = True
                log.close_after_s = time.monotonic() - last
                break
            cmd = raw.decode().strip()
            if log.first_command_after_s is None:
                log.first_command_after_s = time.monotonic() - t_headers
            log.commands.append(cmd)
            log.sent_at.append(ast.clock() if ast.clock else time.monotonic())
            if cmd.startswith("SET VARIABLE") and not ast.dead:
                _, _, name, value = cmd.split(" ", 3)
                log.variables[name] = value.strip('"')
            for took, line in ast.answer(cmd):
                if ast.clock is not None:
                    ast.clock.t += took
                if took and ast.time_scale:
                    await asyncio.sleep(took * ast.time_scale)
                log.replies.append(line)
                if cmd.startswith("SET VARIABLE") and line.startswith("200") and ast.dead:
                    _, _, name, value = cmd.split(" ", 3)
                    log.variables[name] = value.strip('"')
                await _send(writer, line + "\n")
            last = time.monotonic()
        if not ast.dead:
            # Recorded after every close: the dialplan goes on, Hangup() runs, AGI still says HANGUP.
            try:
                await _send(writer, "HANGUP\n")
            except (ConnectionError, OSError):
                pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return log
