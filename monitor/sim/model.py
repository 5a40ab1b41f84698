"""What the simulator decides (its knobs) and what it then knows to be true of each call (the ground truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from monitor.sim import flows
from monitor.sim.agi import AgiSurvey


@dataclass
class SegmentIntent:
    """What the planner decided for one queue visit."""

    queue: str
    outcome: str
    agent: str | None = None
    rna: list[str] = field(default_factory=list)


@dataclass
class CallIntent:
    """Ground truth of one call, as planned."""

    uid: str  # placeholder of the queue channel's Uniqueid; resolve with Live.resolve
    caller: str
    start: float
    segments: list[SegmentIntent] = field(default_factory=list)
    transfers: list[tuple[str, str, str]] = field(default_factory=list)  # (type, queue, from agent)
    voicemail: str | None = None  # the outcome that sent the caller to voicemail
    survey: tuple[str, int | None] | None = None  # the dialplan survey's UserEvent (Status, Score)
    agi: AgiSurvey | None = None  # the survey over FastAGI (the survey_via="agi" mode)
    end: float | None = None  # the time of the call's last event (None while its FastAGI survey runs)

    @property
    def withheld(self) -> bool:
        """Whether the caller withheld the number (no caller number to count)."""
        return self.caller in flows.WITHHELD


@dataclass
class Knobs:
    """Traffic and behaviour (the defaults: a busy call center, every outcome within the first minutes)."""

    mean_interarrival_s: float = 4.0  # over all queues: ~15 calls a minute
    mean_patience_s: float = 90.0
    short_abandon_p: float = 0.04
    ring_answer_s: tuple[float, float] = (2.0, 8.0)
    rna_p: float = 0.1
    ring_timeout_s: float = 15.0
    retry_s: float = 5.0
    talk_s: tuple[float, float] = (15.0, 100.0)
    wrapup_s: tuple[float, float] = (3.0, 12.0)
    pause_p: float = 0.06
    pause_s: tuple[float, float] = (45.0, 240.0)
    blind_p: float = 0.06
    attended_p: float = 0.05
    caller_hangup_p: float = 0.2
    overflow_p: float = 0.5
    exit_key_p: float = 0.3  # of the callers who give up in a queue with an exit key: press it (voicemail)
    repeat_p: float = 0.2
    anonymous_p: float = 0.04
    showcase: bool = True  # the scripted opening callers (monitor.sim.showcase)
    # "dialplan": the lab's Read() + UserEvent CSAT (calls end by themselves: generate()); "agi": qmon's survey
    # over FastAGI, run live by monitor.sim.server (a call then ends when its conversation does).
    survey_via: Literal["dialplan", "agi"] = "dialplan"
    agi_url: str = "agi://127.0.0.1:4573"
    survey_weights: tuple[tuple[str, float], ...] = (("OK", 0.6), ("INVALID", 0.05), ("NOINPUT", 0.1),
                                                     ("HANGUP", 0.15), ("DECLINE", 0.1))
    score_weights: tuple[float, ...] = (0.07, 0.08, 0.15, 0.3, 0.4)
