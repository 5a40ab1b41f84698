"""Mutable per-call state inside the tracker (never leaves it: records are frozen copies)."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.core.records import RingNoAnswer, Segment, Survey, Transfer, Voicemail


@dataclass(slots=True)
class SegState:
    """One queue visit in progress."""

    queue: str
    uid: str
    join_ts: float
    position: int
    entered: bool = True
    state: str = "waiting"  # waiting | left | abandon_pending | answered | done
    outcome: str | None = None
    end_ts: float | None = None
    wait_s: float | None = None
    exit_position: int = 0
    abandon_hold: int | None = None
    agent: str | None = None
    agent_uid: str | None = None
    ring_s: int | None = None
    talk_s: float | None = None
    completion: str | None = None
    transferred: bool = False
    adopted: bool = False  # created at resync from QueueEntry: its QueueCallerJoin may still arrive
    rna: list[RingNoAnswer] = field(default_factory=list)
    ringing: set[str] = field(default_factory=set)

    def freeze(self) -> Segment:
        """The immutable segment."""
        return Segment(
            self.queue, self.entered, self.join_ts, self.end_ts, self.position, self.exit_position,
            self.outcome or "unknown", self.wait_s, self.agent, self.agent_uid, self.ring_s, self.talk_s,
            self.completion, tuple(self.rna),
        )


@dataclass(slots=True)
class CallState:
    """One call in progress."""

    linkedid: str
    call_id: str
    start_ts: float
    caller: str | None = None
    caller_name: str = ""
    caller_checked: bool = False
    segments: list[SegState] = field(default_factory=list)
    channels: set[str] = field(default_factory=set)  # live caller channels that ran Queue()
    transfers: list[Transfer] = field(default_factory=list)
    voicemail: Voicemail | None = None
    survey: Survey | None = None
    repeat: tuple[str, ...] = ()
    suspect: bool = False

    def last_seg(self, uid: str | None = None, queue: str | None = None) -> SegState | None:
        """The latest segment of this channel and/or queue."""
        for s in reversed(self.segments):
            if (uid is None or s.uid == uid) and (queue is None or s.queue == queue):
                return s
        return None


@dataclass(slots=True)
class ChanState:
    """What we know of a live channel."""

    linkedid: str
    channel: str
    caller_num: str
    caller_name: str
    queue_app: str | None = None


NO_CHAN = ChanState("", "", "", "")
