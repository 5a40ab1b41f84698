"""Scripted simulator calls that re-enact the recorded transcripts' stories, and stream signatures to compare."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.sim import after, flows, talk
from monitor.sim.emit import Emitter
from monitor.sim.live import Live

FIXTURES = Path(__file__).parent.parent / "fixtures"
T0 = 1795380000.0
Msg = dict[str, Any]
#: Dialplan applications whose Newexten matters to qmon (the rest is the lab's or the demo's own dialplan).
KEY_APPS = {"Queue", "VoiceMail", "Read", "UserEvent", "Playback"}
#: Cross-channel events that define a call's story.
STORY = {"QueueCallerJoin", "AgentCalled", "AgentRingNoAnswer", "QueueCallerAbandon", "QueueCallerLeave",
         "AgentConnect", "AgentComplete", "BlindTransfer", "AttendedTransfer", "UserEvent", "MessageWaiting",
         "Hangup", "LocalOptimizationBegin", "BridgeMerge"}
SCAFFOLDING = {"Cdr", "DeviceStateChange", "OriginateResponse", "SuccessfulAuth"}


def load_transcript(name: str) -> list[Msg]:
    """A recorded .jsonl transcript's events (no banner, no responses)."""
    out = []
    path = FIXTURES / f"{name}.jsonl"
    for line in (path if path.is_file() else FIXTURES / "more22" / path.name).read_text().splitlines():
        o = json.loads(line)
        o.pop("_recv", None)
        if "Event" in o:
            out.append(o)
    return out


def _role(channel: str) -> str:
    if "-callers-" in channel:
        return "phone" if channel.endswith(";1") else "queue"
    if "-agents-" in channel:
        return "agent"
    return "xfer" if "-xfer-" in channel else "other"


def queue_channel(msgs: list[Msg]) -> str:
    """Uniqueid of the first caller channel that ran Queue()."""
    return next(m["Uniqueid"] for m in msgs if m["Event"] == "Newexten" and m.get("Application") == "Queue")


def channel_signature(msgs: list[Msg], uid: str) -> list[str]:
    """Events of one channel as (type, key header), lab/demo dialplan and scaffolding left out."""
    out = []
    for m in msgs:
        if m.get("Uniqueid") != uid or m["Event"] in SCAFFOLDING:
            continue
        e = m["Event"]
        if e == "VarSet":
            var = m["Variable"].lstrip("_")
            if var.startswith(("LAB", "DEMO")):
                continue
            out.append(f"VarSet {var}")
        elif e == "Newexten":
            app = m["Application"]
            # The lab's async AMI Redirect shows one spurious Queue step (AppData of the old queue): skip it.
            if app not in KEY_APPS or (app == "Queue" and not m["AppData"].startswith(m["Extension"] + ",")):
                continue
            out.append(f"Newexten {app}")
        elif e in ("DialEnd", "DialState"):
            out.append(f"{e} {m['DialStatus']}")
        elif e == "UserEvent":
            out.append(f"UserEvent {m['UserEvent']} {m['Status']}")
        else:
            out.append(e)
    return out


def story(msgs: list[Msg]) -> list[str]:
    """The call's key events across all its channels, with the role of the channel each concerns."""
    out: list[str] = []
    for m in msgs:
        e = m["Event"]
        if e in STORY:
            out.append(f"{e}:{_role(m['Channel'])}" if e == "Hangup" else e)
        elif e == "VarSet" and m["Variable"] == "QUEUESTATUS":
            out.append(f"QUEUESTATUS={m['Value']}")
    # The final hang-ups of the caller's two halves come in either order between captures.
    tail = len(out)
    while tail > 0 and out[tail - 1] in ("Hangup:phone", "Hangup:queue"):
        tail -= 1
    out[tail:] = sorted(out[tail:])
    # The member's own hang-up races AgentComplete inside Asterisk (captures differ): fix one order.
    for i in range(len(out) - 1):
        if out[i] == "Hangup:agent" and out[i + 1] == "AgentComplete":
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def header_shapes(msgs: list[Msg]) -> dict[str, set[frozenset[str]]]:
    """Per event type, every distinct set of header names seen."""
    shapes: dict[str, set[frozenset[str]]] = {}
    for m in msgs:
        shapes.setdefault(m["Event"], set()).add(frozenset(m))
    return shapes


def run_script(build: Callable[[Emitter], None], members: dict[str, list[str]]) -> list[Msg]:
    """Run a scripted call through the wire-order layer, as the simulator does."""
    em = Emitter(random.Random(0))
    for queue, agents in members.items():
        for agent in agents:
            em.member(T0 - 1, "QueueMemberAdded", queue, agent, Status="1", Paused="0")
    build(em)
    live = Live(queue_names=list(members))
    out = [live.apply(t, h) for t, h in sorted(em.events, key=lambda e: e[0])]
    return [h for h in out if h is not None]


def _answered(em: Emitter, survey: tuple[str, str] | None, caller_hangs_up: bool = False) -> None:
    call = flows.arrive(em, T0, "5551001", "support")
    flows.join(call, T0 + 0.02, "support", 60)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    br = talk.connect(call, leg, T0 + 3, 3, 3)
    if caller_hangs_up:
        talk.caller_hangup(call, leg, br, T0 + 7, 3, 4)
        return
    talk.agent_hangup(call, leg, br, T0 + 7, 3, 4)
    kind, digit = survey or ("HANGUP", "")
    after.survey(call, T0 + 7, "support", "agent1", kind, digit)


def _abandoned(em: Emitter, short: bool) -> None:
    call = flows.arrive(em, T0, "5551003", "support")
    flows.join(call, T0 + 0.02, "support", 60)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    if short:
        flows.abandon(call, T0 + 1, 1, leg)
        return
    flows.ring_no_answer(call, leg, T0 + 4, 4000)
    leg = flows.ring(call, T0 + 5, "agent1")
    flows.abandon(call, T0 + 5.1, 5, leg)


def _timeout(em: Emitter, overflow: bool) -> None:
    call = flows.arrive(em, T0, "5551005", "support")
    flows.join(call, T0 + 0.02, "support", 8)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    flows.ring_no_answer(call, leg, T0 + 4, 4000)
    if overflow:
        leg = flows.ring(call, T0 + 5, "agent1")
        flows.ring_no_answer(call, leg, T0 + 8, 3000)
        flows.queue_timeout(call, T0 + 8, 8, None)
        after.overflow(call, T0 + 8, "sales")
        flows.join(call, T0 + 8.01, "sales", 60)
        leg = flows.ring(call, T0 + 8.02, "agent3")
        br = talk.connect(call, leg, T0 + 10, 2, 2)
        talk.agent_hangup(call, leg, br, T0 + 14, 2, 4)
        after.survey(call, T0 + 14, "sales", "agent3", "OK", "2")
        return
    leg = flows.ring(call, T0 + 5, "agent2")
    flows.ring_no_answer(call, leg, T0 + 8, 3000)
    flows.queue_timeout(call, T0 + 8, 8, None)
    after.voicemail(call, T0 + 8, "TIMEOUT", "support", 15)


def _empty(em: Emitter) -> None:
    call = flows.arrive(em, T0, "5551006", "support")
    flows.join_empty(call, T0 + 0.02, "support", 60)
    after.voicemail(call, T0 + 0.02, "JOINEMPTY", "support", 14)


def _ring_no_answer(em: Emitter) -> None:
    call = flows.arrive(em, T0, "5551007", "support")
    flows.join(call, T0 + 0.02, "support", 60)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    flows.ring_no_answer(call, leg, T0 + 4, 4000)
    leg = flows.ring(call, T0 + 5, "agent2")
    br = talk.connect(call, leg, T0 + 7, 7, 2)
    talk.agent_hangup(call, leg, br, T0 + 11, 7, 4)
    after.survey(call, T0 + 11, "support", "agent2", "OK", "5")


def _blind(em: Emitter) -> None:
    call = flows.arrive(em, T0, "5551008", "support")
    flows.join(call, T0 + 0.02, "support", 60)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    br = talk.connect(call, leg, T0 + 2, 2, 2)
    talk.blind_transfer(call, leg, br, T0 + 5, 2, 3, "sales")
    flows.join(call, T0 + 5.01, "sales", 60)
    leg = flows.ring(call, T0 + 5.02, "agent3")
    br = talk.connect(call, leg, T0 + 7, 2, 2)
    talk.agent_hangup(call, leg, br, T0 + 12, 2, 5)
    after.survey(call, T0 + 12, "sales", "agent3", "OK", "3")


def _attended(em: Emitter) -> None:
    call = flows.arrive(em, T0, "5551009", "support")
    flows.join(call, T0 + 0.02, "support", 60)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    br = talk.connect(call, leg, T0 + 2, 2, 2)
    leg2 = talk.attended_transfer(call, leg, br, T0 + 5, 2, T0 + 2, T0 + 12, "2002", "agent2")
    talk.transferred_hangup(call, leg2, br, T0 + 16, 2, T0 + 2)
    after.survey(call, T0 + 16, "support", "agent1", "OK", "5")


def _exit_empty(em: Emitter) -> None:
    """agent1 rings and never answers; paused at 6 s, removed at 8 s: the caller leaves (LEAVEEMPTY), voicemail."""
    call = flows.arrive(em, T0, "5551201", "support")
    flows.join(call, T0 + 0.02, "support", 60)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    flows.ring_no_answer(call, leg, T0 + 4, 4000)
    leg = flows.ring(call, T0 + 5, "agent1")
    em.member(T0 + 6, "QueueMemberPause", "support", "agent1", Paused="1", PausedReason="break")
    em.member(T0 + 8, "QueueMemberRemoved", "support", "agent1")
    flows.ring_no_answer(call, leg, T0 + 9, 4000)
    flows.queue_timeout(call, T0 + 9, 9, None, "LEAVEEMPTY")
    after.voicemail(call, T0 + 9, "LEAVEEMPTY", "support", 2)


def _exit_key(em: Emitter) -> None:
    """The caller presses 0 after 3 s while agent1 rings: EXITWITHKEY, the exit context sends it to voicemail."""
    call = flows.arrive(em, T0, "5551202", "support")
    flows.join(call, T0 + 0.02, "support", 60)
    leg = flows.ring(call, T0 + 0.03, "agent1")
    flows.exit_key(call, T0 + 3.27, 3.25, leg, "0", 60)
    after.voicemail(call, T0 + 3.27, "", "support", 2)


#: Per transcript, tokens whose position is a race inside Asterisk in that capture (left out of the comparison).
RACES: dict[str, set[str]] = {
    "overflow": {"Hangup:agent"},  # the last ring-no-answer coincides with the queue timeout
    "exit_empty": {"Hangup:agent"},  # the same: the last ring-no-answer and leaving the empty queue
    "blind_transfer": {"Hangup:agent", "VarSet BRIDGEPEER"},  # old member leg vs the new queue; BRIDGEPEER
}
SUPPORT = {"support": ["agent1", "agent2"], "sales": ["agent3"]}
#: Transcripts whose members differ from SUPPORT.
MEMBERS: dict[str, dict[str, list[str]]] = {"exit_empty": {"support": ["agent1"]}, "exit_key": {"support": ["agent1"]}}
#: transcript name -> the same story told by the simulator's flows.
SCRIPTS: dict[str, Callable[[Emitter], None]] = {
    "answered_agent_hangup": lambda em: _answered(em, ("OK", "4")),
    "answered_caller_hangup": lambda em: _answered(em, None, caller_hangs_up=True),
    "survey_hangup": lambda em: _answered(em, None),
    "survey_invalid": lambda em: _answered(em, ("INVALID", "9")),
    "survey_noinput": lambda em: _answered(em, ("NOINPUT", "")),
    "abandoned": lambda em: _abandoned(em, short=False),
    "abandoned_short": lambda em: _abandoned(em, short=True),
    "voicemail_timeout": lambda em: _timeout(em, overflow=False),
    "overflow": lambda em: _timeout(em, overflow=True),
    "voicemail_empty": _empty,
    "ring_no_answer": _ring_no_answer,
    "blind_transfer": _blind,
    "attended_transfer_b": _attended,
    "exit_empty": _exit_empty,
    "exit_key": _exit_key,
}
