"""The simulated caller's side of the post-call survey: Asterisk's ``AGI()`` over real FastAGI (res_agi's client).

Shaped on what Asterisk 22 did beside qmon (``live-asterisk-22/agi``): the ``agi_*`` request headers in 2-3 TCP
chunks, then one reply per command — ``200 result=1`` to VERBOSE and SET VARIABLE, ``200 result=<digits>`` (or
``200 result= (timeout)``, ``200 result=*``) to GET DATA, ``200 result=0 endpos=<samples>`` to STREAM FILE,
``200 result=-1`` then unsolicited ``HANGUP`` lines when the caller hangs up, ``511 Command Not Permitted on a dead
channel or intercept routine`` afterwards, ``HANGUP`` after qmon closes. Time: each reply waits what the prompt
and the digit timeout would really take, divided by the simulation's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.sim.flows import Call

DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
RATE = 8000  # STREAM FILE endpos is in samples of the 8 kHz prompts
PRESS_S = 1.75  # recorded: a key typed during the question arrived ~1.75 s after GET DATA
#: Prompts played to their end, as recorded: STREAM FILE's endpos (samples).
ENDPOS = {"thanks": 23299, "goodbye": 21378, "noinput": 19777, "invalid": 19875, "callback-intro": 59216}
QUESTION_S = 10.0  # recorded: GET DATA of a question with no input took ~15 s with a 5 s digit timeout


def _length(prompt: str) -> float:
    """A prompt's length (s) from its sound name (``qmon/en/thanks``)."""
    name = prompt.rsplit("/", 1)[-1]
    return ENDPOS[name] / RATE if name in ENDPOS else QUESTION_S if name.endswith("question") else 3.0


@dataclass
class AgiSurvey:
    """One survey over FastAGI: the call it runs on, the caller's keys, and what qmon did (filled as it runs).

    ``keys``: one item per GET DATA: digits ("4"), "*" (decline), "" (nothing), "!" (hangs up during it).
    """

    call: Call
    queue: str
    agent: str
    keys: list[str]
    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    agistatus: str = ""  # SUCCESS, HANGUP, FAILURE (qmon unreachable)

    @property
    def result(self) -> tuple[str, int | None]:
        """(QMON_SURVEY_STATUS, QMON_CSAT) as qmon set them ("" when it set none)."""
        csat = self.variables.get("QMON_CSAT", "")
        return self.variables.get("QMON_SURVEY_STATUS", ""), int(csat) if csat.isdigit() else None


def caller_keys(kind: str, score: int, rng: random.Random) -> list[str]:
    """What a caller of survey ``kind`` (OK, INVALID, NOINPUT, HANGUP, DECLINE) types at each question."""
    if kind == "OK":
        return [str(score)]
    if kind == "INVALID":  # a wrong key, then (half of them) the right one
        return ["9", str(score) if rng.random() < 0.5 else "8"]
    if kind == "NOINPUT":
        return ["", ""]
    if kind == "DECLINE":
        return ["*"]
    return ["!"]


Emit = Callable[[str, str, str], None]  # (kind: var | gone | end, name, value)


def request(port: int, h: dict[str, str], queue: str) -> str:
    """The FastAGI request headers Asterisk 22 sends for ``AGI(agi://127.0.0.1:PORT/csat,LINKEDID,QUEUE,en)``."""
    lines = [
        "agi_network: yes", "agi_network_script: csat", f"agi_request: agi://127.0.0.1:{port}/csat",
        f"agi_channel: {h['channel']}", "agi_language: en", "agi_type: Local", f"agi_uniqueid: {h['uniqueid']}",
        "agi_version: UNKNOWN__and_probably_unsupported", f"agi_callerid: {h['callerid']}",
        f"agi_calleridname: {h['calleridname']}", "agi_callingpres: 0", "agi_callingani2: 0", "agi_callington: 0",
        "agi_callingtns: 0", "agi_dnid: unknown", "agi_rdnis: unknown", f"agi_context: {h['context']}",
        f"agi_extension: {h['extension']}", f"agi_priority: {h['priority']}", "agi_enhanced: 0.0",
        "agi_accountcode: ", "agi_threadid: 140530722870976", f"agi_arg_1: {h['linkedid']}", f"agi_arg_2: {queue}",
        "agi_arg_3: en",
    ]
    return "\n".join(lines) + "\n\n"


class AsteriskReplies:
    """Replies to one conversation's commands as Asterisk 22 did (GET DATA read by ast_readstring).

    ``keys``: the caller's, one item per GET DATA (see :class:`AgiSurvey`); ``emit`` gets the channel's events.
    Not modelled: keys typed past ``#`` spilling into the next GET DATA, hang-ups during a STREAM FILE.
    """

    def __init__(self, keys: list[str], emit: Emit) -> None:
        self.keys, self.emit = keys, emit
        self.variables: dict[str, str] = {}
        self.dead = False
        self._gi = 0

    def answer(self, command: str) -> list[tuple[float, str]]:
        """(seconds the call takes before it, line) for each line sent in reply to ``command``."""
        words = command.split()
        verb = " ".join(words[:2]).upper()
        if verb == "SET VARIABLE" and len(words) >= 4:
            name, value = words[2], command.split(" ", 3)[3].strip().strip('"')
            if not self.dead:  # res_agi allows it on a dead channel, but nothing is left to set it on
                self.variables[name] = value
                self.emit("var", name, value)
            return [(0.0, "200 result=1")]
        if words[:1] == ["VERBOSE"]:
            return [(0.0, "200 result=1")]
        if verb == "GET DATA" and len(words) >= 5:
            return [(0.0, DEAD)] if self.dead else self._get_data(words[2], int(words[3]), int(words[4]))
        if verb == "STREAM FILE" and len(words) >= 3:
            if self.dead:
                return [(0.0, DEAD)]
            length = _length(words[2])
            self.emit("var", "PLAYBACKSTATUS", "SUCCESS")
            return [(length, f"200 result=0 endpos={round(length * RATE)}")]
        return [(0.0, "510 Invalid or unknown command")]

    def _get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> list[tuple[float, str]]:
        length = _length(prompt)
        keys = self.keys[self._gi] if self._gi < len(self.keys) else ""
        self._gi += 1
        if keys == "!":
            self.dead = True
            return [(min(length, 2.0), "200 result=-1"), (0.0, "HANGUP"), (0.0, "HANGUP")]
        if not keys:
            return [(length + timeout_ms / 1000, "200 result= (timeout)")]
        digits = keys.split("#")[0][:max_digits]
        if "#" in keys or len(digits) >= max_digits:
            return [(PRESS_S, f"200 result={digits}")]
        return [(PRESS_S + timeout_ms / 1000, f"200 result={digits} (timeout)")]


async def run_survey(s: AgiSurvey, port: int, headers: dict[str, str], emit: Emit, speed: float,
                     timeout_s: float = 30.0) -> None:
    """Connect to qmon's survey server as ``AGI()`` does and answer until qmon closes; then the dialplan goes on.

    ``emit`` receives the events the conversation causes on the channel (VarSets, the caller's hang-up, the end
    with AGISTATUS). A refused connection ends as Asterisk's ``AGISTATUS=FAILURE``.
    """
    ast = AsteriskReplies(s.keys, emit)
    s.variables = ast.variables
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        s.agistatus = "FAILURE"
        emit("end", "", "FAILURE")
        return
    try:
        text = request(port, headers, s.queue)
        for a, b in ((0, 180), (180, 640), (640, len(text))):  # as recorded: 2-3 TCP segments
            writer.write(text[a:b].encode())
            await writer.drain()
            await asyncio.sleep(0.002)
        while True:
            async with asyncio.timeout(timeout_s):
                raw = await reader.readline()
            if not raw:
                break
            command = raw.decode().strip()
            s.commands.append(command)
            for took, line in ast.answer(command):
                if took:
                    await asyncio.sleep(took / speed)
                if line == "200 result=-1" and not s.agistatus:
                    emit("gone", "", "")
                writer.write((line + "\n").encode())
                await writer.drain()
        if not ast.dead:  # recorded after every close: the dialplan goes on, AGI still says HANGUP
            writer.write(b"HANGUP\n")
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    s.agistatus = "HANGUP" if ast.dead else "SUCCESS"
    emit("end", "", s.agistatus)
