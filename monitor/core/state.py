"""The tracker's explicit state: per-call, per-segment and per-channel records, and the whole :class:`TrackerState`.

Mutable, and never leaves the tracker: records are frozen copies. Handlers (:mod:`monitor.core.handlers`) and
call operations (:mod:`monitor.core.calls`) receive a :class:`TrackerState` and use its public fields only.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from monitor.core import events as ev
from monitor.core.agents import AgentBoard
from monitor.core.members import Members
from monitor.core.owed import OwedCallbacks
from monitor.core.records import RingNoAnswer, Segment, Survey, Transfer, Voicemail
from monitor.core.repeat import WITHHELD_NUMBERS, RepeatIndex
from monitor.core.segments import OPEN_STATES, SegmentState
from monitor.core.transfers import TransferTargets
from monitor.core.vocab import Outcome


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Tracker knobs (the defaults are qmon's documented definitions); durations in seconds."""

    abandon_short_s: float = 5.0
    repeat_windows: tuple[str, ...] = ("24h",)
    repeat_max_entries: int = 500_000
    max_channels: int = 200_000
    max_call_age_s: float = 86_400.0  # a call open longer lost its Hangup (filtered AMI user?): closed as stale
    pbx: str = "default"
    # A call's record is final this long after its caller's hang-up, so late app_queue events (AgentComplete
    # raised after the caller's channel is gone) still land in it before it is stored and counted.
    late_grace_s: float = 2.0
    home_region: str = ""  # ISO 3166 region of national caller numbers ("PL"): E.164 via phonenumbers
    trunk_prefixes: tuple[str, ...] = ()  # prefixes a trunk puts before caller numbers, stripped first
    withheld_numbers: tuple[str, ...] = WITHHELD_NUMBERS  # never a caller: never distinct, never a repeat
    pause_reasons: tuple[str, ...] = ()  # pause reasons kept as labels; any other is "other" (raw text kept)
    wrapup_s: tuple[tuple[str, float], ...] = ()  # (queue, queues.conf wrapuptime s) for members that say 0
    owed_horizon_s: float = 4 * 3600.0  # an owed callback not reached within this counts as truly abandoned


@dataclass(slots=True)
class SegState:
    """One queue visit in progress; ``outcome`` is None exactly while ``state`` is in ``OPEN_STATES``."""

    queue: str
    uid: str
    join_ts: float
    position: int
    entered: bool = True
    state: SegmentState = SegmentState.WAITING
    outcome: Outcome | None = None
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

    @property
    def is_open(self) -> bool:
        """No outcome yet (waiting, left or abandon pending)."""
        return self.state in OPEN_STATES

    def freeze(self) -> Segment:
        """The immutable segment (outcome ``unknown`` if still open)."""
        return Segment(
            self.queue, self.entered, self.join_ts, self.end_ts, self.position, self.exit_position,
            (self.outcome or Outcome.UNKNOWN).value, self.wait_s, self.agent, self.agent_uid, self.ring_s,
            self.talk_s, self.completion, tuple(self.rna),
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
    hangup_ts: float | None = None  # its last caller channel hung up then: final after the grace period

    def last_seg(self, uid: str | None = None, queue: str | None = None) -> SegState | None:
        """The latest segment of this channel and/or queue."""
        for s in reversed(self.segments):
            if (uid is None or s.uid == uid) and (queue is None or s.queue == queue):
                return s
        return None

    def answered(self) -> list[SegState]:
        """Segments answered by a member, oldest first."""
        return [s for s in self.segments if s.outcome == Outcome.ANSWERED]


@dataclass(slots=True)
class ChanState:
    """What we know of a live channel."""

    linkedid: str
    channel: str
    caller_num: str
    caller_name: str
    queue_app: str | None = None

    def refresh(self, linkedid: str, channel: str, caller_num: str, caller_name: str) -> None:
        """Take what a later snapshot of the channel says (empty values say nothing; the Linkedid only if unknown)."""
        if linkedid and not self.linkedid:  # first seen in a QueueEntry, which carries no Linkedid
            self.linkedid = linkedid
        if caller_num:
            self.caller_num = caller_num
            self.caller_name = caller_name
        if channel:
            self.channel = channel


NO_CHAN = ChanState("", "", "", "")


@dataclass(slots=True)
class ResyncAnswers:
    """What one resync attempt collected (times: when each answer was read, on the PBX clock, s)."""

    alive: set[str] = field(default_factory=set)  # Uniqueids listed by QueueEntry or CoreShowChannel
    waiting: list[tuple[ev.QueueEntry, float]] = field(default_factory=list)
    channels: dict[str, tuple[ev.CoreShowChannel, float]] = field(default_factory=dict)  # by Uniqueid
    members: set[tuple[str, str]] = field(default_factory=set)  # (queue, member) listed by QueueMember

    def hung_up(self, uid: str) -> None:
        """A Hangup of channel ``uid`` read after an answer that listed it: it is no longer alive (Asterisk sends a
        session's answers and events in order, so the listing is older than the hang-up)."""
        self.alive.discard(uid)
        self.waiting = [(e, ts) for e, ts in self.waiting if e.chan.uniqueid != uid]
        self.channels.pop(uid, None)


@dataclass(slots=True)
class TrackerState:
    """Everything the tracker knows; the bounded maps evict their oldest entries (sizes in ``config``)."""

    config: TrackerConfig
    repeats: RepeatIndex
    members: Members = field(default_factory=Members)
    queues: set[str] = field(default_factory=set)
    calls: dict[str, CallState] = field(default_factory=dict)  # linkedid -> open call
    by_uid: dict[str, str] = field(default_factory=dict)  # caller channel uniqueid -> linkedid
    chans: OrderedDict[str, ChanState] = field(default_factory=OrderedDict)
    closed: OrderedDict[str, float] = field(default_factory=OrderedDict)  # recently closed linkedid -> ts
    # Linkedid and call id of recently closed calls -> (queue, agent) a late survey answer is counted under.
    recent: OrderedDict[str, tuple[str | None, str | None]] = field(default_factory=OrderedDict)
    # linkedid -> (hang-up time on the PBX clock, the daemon's clock then): open until the grace period ends
    ending: dict[str, tuple[float, float]] = field(default_factory=dict)
    # recently final calls, amendable by a late event: linkedid -> (call, end ts, closed_by)
    final: OrderedDict[str, tuple[CallState, float, str]] = field(default_factory=OrderedDict)
    targets: TransferTargets = field(default_factory=TransferTargets)
    zombies: OrderedDict[str, float] = field(default_factory=OrderedDict)  # uniqueids renamed <ZOMBIE> -> ts
    resync: ResyncAnswers | None = None  # answers collected since resync_begin (None: no resync running)
    now: float = 0.0  # the latest event time seen (PBX clock, epoch s)
    daemon_now: float = 0.0  # the daemon's clock at the latest event or tick (epoch s; never compared with PBX time)
    pbx_offset: float = 0.0  # PBX clock minus the daemon clock (s), from the last sane Timestamp
    pbx_clock_known: bool = False  # a sane Timestamp was seen: pbx_offset is the PBX's, not 0 by default
    absurd_run: int = 0  # consecutive Timestamps a day ahead of the stream, ignored so far
    stats: dict[str, int] = field(default_factory=lambda: {"events": 0, "evicted_channels": 0, "late_events": 0,
                                                           "amended": 0})
    skips: Counter[str] = field(default_factory=Counter)  # skip reasons not yet handed to the ingest counters
    agents: AgentBoard = field(default_factory=AgentBoard)  # per (queue, agent) measures (see __post_init__)
    owed: OwedCallbacks = field(default_factory=OwedCallbacks)  # callers owed a call

    def __post_init__(self) -> None:
        c = self.config
        self.agents = AgentBoard(c.pause_reasons, dict(c.wrapup_s))
        self.owed = OwedCallbacks(c.owed_horizon_s, pbx=c.pbx)

    def call_for(self, uid: str, linkedid: str) -> CallState | None:
        """The open call of a caller channel Uniqueid, else of a Linkedid."""
        lid = self.by_uid.get(uid)
        if lid is not None and lid in self.calls:
            return self.calls[lid]
        return self.calls.get(linkedid)

    def caller_call(self, c: ev.Chan) -> CallState | None:
        """The open call whose caller channel this is (None for agent legs and unknown channels)."""
        lid = self.by_uid.get(c.uniqueid)
        return self.calls.get(lid) if lid is not None else None

    def chan(self, c: ev.Chan) -> ChanState:
        """The channel's state, created or refreshed from this snapshot (the oldest is evicted past the cap)."""
        ch = self.chans.get(c.uniqueid)
        if ch is None:
            ch = ChanState(c.linkedid, c.channel, c.caller_num, c.caller_name)
            self.chans[c.uniqueid] = ch
            if len(self.chans) > self.config.max_channels:
                old_uid, _ = self.chans.popitem(last=False)
                self.stats["evicted_channels"] += 1
                self.by_uid.pop(old_uid, None)
        else:
            ch.refresh(c.linkedid, c.channel, c.caller_num, c.caller_name)
        return ch
