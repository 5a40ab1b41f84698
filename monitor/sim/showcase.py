"""The demo's opening minutes: scripted callers, so every outcome shows within minutes whatever the seed.

Each :class:`Force` is one caller arriving at a fixed offset who behaves as told (how patient, which rings go
unanswered, what happens once answered); the random traffic flows around them. The planner still decides the
rest (which agent, when), so the ground truth of a forced call is as real as any other's.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.sim.roster import Roster


@dataclass(frozen=True)
class Force:
    """One scripted caller: arrival offset (s from the start) and behaviour."""

    at_s: float
    queue: str
    number: str = ""  # "" a new number, "anonymous" (withheld), "repeat" (the first scripted caller again)
    patience_s: float | None = None  # None: the usual random patience
    rna: int = 0  # rings that go unanswered (-1: every ring)
    talk: str = ""  # once answered: "agent" / "caller" hangs up, "blind" / "attended" transfer ("": random)
    overflow: bool | None = None  # after a timeout: into the overflow queue (True) or voicemail (False)
    exit_key: bool = False  # gives up by pressing the queue's exit key instead of hanging up
    survey: str = ""  # the first survey's answer kind (OK, INVALID, NOINPUT, HANGUP, DECLINE; "": random)


def opening(roster: Roster) -> list[Force]:
    """The scripted callers of the first minutes, for the default queues (support, sales, billing).

    ``billing`` works shifts: nobody is logged in for its first 20 s (a caller then: JOINEMPTY), and a caller is
    placed to be waiting when its last member logs out (LEAVEEMPTY).
    """
    if not {"support", "sales", "billing"} <= set(roster.queues):
        return []
    out = [
        Force(2, "support", talk="agent", survey="OK"),
        Force(4, "billing"),  # nobody logged in yet: straight to voicemail
        Force(6, "support", rna=1, talk="agent", survey="NOINPUT"),
        Force(9, "support", patience_s=2.5, rna=-1),  # abandoned within 5 s
        Force(12, "sales", patience_s=16, rna=-1),  # abandoned
        Force(15, "support", talk="blind", survey="INVALID"),
        Force(18, "support", talk="attended", survey="OK"),
        Force(21, "support", number="anonymous", talk="agent", survey="OK"),
        Force(24, "support", talk="caller"),
        Force(27, "support", patience_s=9, rna=-1, exit_key=True),
        Force(30, "support", patience_s=1e9, rna=-1, overflow=False),  # timeout -> voicemail
        Force(33, "support", patience_s=1e9, rna=-1, overflow=True, talk="agent", survey="HANGUP"),
        Force(36, "support", number="repeat", talk="agent", survey="DECLINE"),
    ]
    spec = roster.queues["billing"]
    if spec.rota is not None:
        empty = roster.empty_at("billing", roster.start + spec.rota.on_s + 1)
        out.append(Force(empty - roster.start - 12, "billing", patience_s=1e9, rna=-1))  # there when all log out
    return out


#: Planned pauses of the opening minutes (agent, from, to in s from the start, reason), beside the random ones.
BREAKS = (("agent3", 50.0, 170.0, "training"), ("agent11", 80.0, 320.0, "lunch"), ("agent6", 140.0, 200.0, "break"))


def breaks(roster: Roster) -> list[tuple[str, float, float, str]]:
    """The opening's planned pauses for the agents the roster has, as absolute times."""
    known = {a for q in roster.queues.values() for a in q.agents}
    return [(a, roster.start + t0, roster.start + t1, why) for a, t0, t1, why in BREAKS if a in known]
