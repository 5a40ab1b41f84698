"""Agent figures derived from an Asterisk queue_log alone: the ground truth the AMI-fed AgentBoard must equal.

queue_log lines are ``time|callid|queue|agent|event|data1|data2|...`` (whole seconds). Per (queue, agent):

* logged in: ADDMEMBER .. REMOVEMEMBER (still logged in: .. ``end``);
* paused by reason: PAUSE|reason (or ADDMEMBER|PAUSED: reason ``""``) .. UNPAUSE / REMOVEMEMBER / ``end``; the
  per-queue PAUSE lines that follow a PAUSEALL are the pauses (the PAUSEALL line itself has queue NONE);
* talk: COMPLETEAGENT/COMPLETECALLER data2 (talktime s), answered: CONNECT, ring-no-answer: RINGNOANSWER.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from monitor.core.servicelevel import SlCounts


@dataclass
class QlAgent:
    """What queue_log says about one member of one queue (seconds)."""

    logged_in_s: float = 0.0
    paused_by_reason: dict[str, float] = field(default_factory=dict)
    pause_intervals: int = 0
    talk_s: float = 0.0
    answered: int = 0
    completed: int = 0
    ring_no_answer: int = 0
    login_at: float | None = None
    pause: tuple[str, float] | None = None


def _end_pause(a: QlAgent, ts: float) -> None:
    if a.pause is not None:
        reason, since = a.pause
        a.paused_by_reason[reason] = a.paused_by_reason.get(reason, 0.0) + ts - since
        a.pause_intervals += 1
        a.pause = None


def agents_from_queue_log(path: Path, end: float) -> dict[tuple[str, str], QlAgent]:
    """(queue, agent) -> figures, open sessions and pauses closed at ``end`` (epoch s)."""
    out: dict[tuple[str, str], QlAgent] = {}
    for line in path.read_text().splitlines():
        parts = line.split("|")
        if len(parts) < 5:
            continue
        ts, queue, agent, verb, data = float(parts[0]), parts[2], parts[3], parts[4], parts[5:]
        if queue == "NONE" or agent == "NONE":
            continue
        a = out.setdefault((queue, agent), QlAgent())
        if verb == "ADDMEMBER":
            a.login_at = ts
            if data and data[0] == "PAUSED":
                a.pause = ("", ts)
        elif verb == "REMOVEMEMBER":
            _end_pause(a, ts)
            if a.login_at is not None:
                a.logged_in_s += ts - a.login_at
            a.login_at = None
        elif verb == "PAUSE":
            _end_pause(a, ts)
            a.pause = (data[0] if data else "", ts)
        elif verb == "UNPAUSE":
            _end_pause(a, ts)
        elif verb == "CONNECT":
            a.answered += 1
        elif verb in ("COMPLETEAGENT", "COMPLETECALLER"):
            a.completed += 1
            a.talk_s += float(data[1])
        elif verb == "RINGNOANSWER":
            a.ring_no_answer += 1
    for a in out.values():
        _end_pause(a, end)
        if a.login_at is not None:
            a.logged_in_s += end - a.login_at
            a.login_at = None
    return out


def last_time(path: Path) -> float:
    """The time of the last queue_log line (epoch s)."""
    return max(float(line.split("|", 1)[0]) for line in path.read_text().splitlines() if line.strip())


def sl_counts_from_queue_log(path: Path, threshold_s: float, short_s: float = 5.0) -> dict[str, SlCounts]:
    """Per queue: offered = ENTERQUEUE, answered = CONNECT (data1 holdtime), abandoned = ABANDON (data3 wait)."""
    acc: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        parts = line.split("|")
        if len(parts) < 5 or parts[2] == "NONE":
            continue
        queue, verb, data = parts[2], parts[4], parts[5:]
        c = acc.setdefault(queue, [0, 0, 0, 0, 0, 0])
        if verb == "ENTERQUEUE":
            c[0] += 1
        elif verb == "CONNECT":
            c[1] += 1
            c[2] += int(data[0]) <= threshold_s
        elif verb == "ABANDON":
            wait = int(data[2])
            c[3] += 1
            c[4] += wait <= threshold_s
            c[5] += wait < short_s
    return {q: SlCounts(*c) for q, c in acc.items()}
