"""Typed, frozen AMI events: the only input the call tracker understands.

Each dataclass is named as Asterisk spells the event (``QueueCallerJoin``, ``CoreShowChannel``, ...; the
QueueMember* family is one :class:`MemberEvent` with a ``kind``) and carries just the headers the tracker
uses. ``ts`` is Asterisk's own ``Timestamp`` header (epoch seconds) when the event has one; list/status
responses carry none, and the tracker then uses the time it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Chan:
    """The channel snapshot common to channel events."""

    uniqueid: str
    linkedid: str
    channel: str = ""
    caller_num: str = ""
    caller_name: str = ""
    context: str = ""
    exten: str = ""
    language: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every normalised event."""

    ts: float | None


@dataclass(frozen=True, slots=True)
class ChannelEvent(Event):
    """An event about one channel."""

    chan: Chan


@dataclass(frozen=True, slots=True)
class Newchannel(ChannelEvent):
    """Newchannel: a channel is created."""


@dataclass(frozen=True, slots=True)
class Rename(ChannelEvent):
    """Rename: the channel with this Uniqueid is now called ``new_name`` (a masquerade names the loser
    ``<name><ZOMBIE>``; channel.c ast_change_name / the stasis snapshot of a swapped channel)."""

    new_name: str


@dataclass(frozen=True, slots=True)
class Newexten(ChannelEvent):
    """Newexten: the channel runs a dialplan application."""

    application: str
    app_data: str


@dataclass(frozen=True, slots=True)
class VarSet(ChannelEvent):
    """VarSet of a variable the tracker cares about (others are dropped during normalisation)."""

    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class Hangup(ChannelEvent):
    """Hangup of a channel."""

    cause: str


@dataclass(frozen=True, slots=True)
class QueueCallerJoin(ChannelEvent):
    """QueueCallerJoin: a caller enters a queue (queue_log ENTERQUEUE)."""

    queue: str
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class QueueCallerLeave(ChannelEvent):
    """QueueCallerLeave: a caller leaves a queue for any reason (it precedes AgentConnect)."""

    queue: str
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class QueueCallerAbandon(ChannelEvent):
    """QueueCallerAbandon: also raised on timeout and leave-empty, see the tracker."""

    queue: str
    position: int
    original_position: int
    hold_time: int


@dataclass(frozen=True, slots=True)
class AgentEvent(ChannelEvent):
    """Base of the Agent* queue events; ``chan`` is the caller, ``dest_*`` the member channel."""

    queue: str
    member: str
    interface: str
    dest_uniqueid: str
    dest_channel: str


@dataclass(frozen=True, slots=True)
class AgentCalled(AgentEvent):
    """AgentCalled: a member starts ringing."""


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer(AgentEvent):
    """AgentRingNoAnswer; RingTime is milliseconds on the wire."""

    ring_ms: int


@dataclass(frozen=True, slots=True)
class AgentConnect(AgentEvent):
    """AgentConnect; HoldTime and RingTime are seconds."""

    hold_time: int
    ring_time: int


@dataclass(frozen=True, slots=True)
class AgentComplete(AgentEvent):
    """AgentComplete; Reason is agent, caller or transfer."""

    hold_time: int
    talk_time: int
    reason: str


@dataclass(frozen=True, slots=True)
class AgentDump(AgentEvent):
    """AgentDump: the member hung up during the announcement."""


@dataclass(frozen=True, slots=True)
class BlindTransfer(Event):
    """BlindTransfer: transferer is the member leg, transferee the caller."""

    result: str
    transferer_uniqueid: str
    transferee_uniqueid: str
    linkedid: str
    exten: str
    context: str


@dataclass(frozen=True, slots=True)
class AttendedTransfer(Event):
    """AttendedTransfer; the TransferTarget* block is not reliable, so ``target_channel`` may be empty."""

    result: str
    transferer_uniqueid: str
    transferee_uniqueid: str
    linkedid: str
    dest_type: str
    target_channel: str
    dest_app: str
    dest_exten: str


@dataclass(frozen=True, slots=True)
class UserEvent(ChannelEvent):
    """UserEvent with its name and the user headers (everything outside the channel snapshot)."""

    name: str
    fields: tuple[tuple[str, str], ...] = field(default=())

    def get(self, key: str, default: str = "") -> str:
        """A user header by name (case-insensitive)."""
        lk = key.lower()
        for k, v in self.fields:
            if k.lower() == lk:
                return v
        return default


@dataclass(frozen=True, slots=True)
class MemberEvent(Event):
    """QueueMemberAdded/Removed/Status/Pause and the QueueMember status-list entry."""

    kind: str  # added | removed | status | pause | list
    queue: str
    member: str
    interface: str
    status: int
    paused: bool
    paused_reason: str
    in_call: bool
    state_interface: str = ""  # StateInterface: the device whose state counts (FreePBX: hint:1001@ext-local)
    login_time: int = 0  # LoginTime (epoch s; 0 when absent): when the member joined the queue
    last_pause: int = 0  # LastPause (epoch s; 0 when never paused)
    wrapuptime: int = 0  # the member's own Wrapuptime (s; 0 = the queue's)


@dataclass(frozen=True, slots=True)
class DialEvent(Event):
    """DialBegin/DialEnd (Asterisk 12+): ``channel``/``uniqueid`` dial out (empty for an Originate), ``dest_*`` is rung.

    Headers as documented (docs.asterisk.org, AMI Events DialBegin/DialEnd): the caller snapshot (``Channel``,
    ``Uniqueid``, ``Exten``, ...), the ``Dest*`` snapshot, ``DialString`` (DialBegin), ``DialStatus`` (DialEnd).
    """

    channel: str
    uniqueid: str
    exten: str
    dest_channel: str
    dest_uniqueid: str
    dest_caller_num: str
    dest_exten: str


@dataclass(frozen=True, slots=True)
class DialBegin(DialEvent):
    """DialBegin: ``dial_string`` is Dial()'s argument for this destination (``PJSIP/5551010@trunk``)."""

    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnd(DialEvent):
    """DialEnd: ``dial_status`` ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL, ..."""

    dial_status: str


@dataclass(frozen=True, slots=True)
class QueueParams(Event):
    """QueueParams (QueueStatus response): tells which queues exist."""

    queue: str


@dataclass(frozen=True, slots=True)
class QueueEntry(ChannelEvent):
    """QueueEntry (QueueStatus response): a caller waiting right now, ``wait`` s so far.

    Asterisk's QueueEntry carries no Linkedid (app_queue.c, manager_queues_status): ``chan.linkedid`` is ``''``;
    the resync recovers it from the channel's CoreShowChannel.
    """

    queue: str
    position: int
    wait: int


@dataclass(frozen=True, slots=True)
class CoreShowChannel(ChannelEvent):
    """CoreShowChannel (CoreShowChannels response): a channel alive right now, for ``duration_s`` s.

    ``duration_s`` is None when Asterisk sent no parsable ``Duration`` (HH:MM:SS); ``bridge_id`` is ``''`` when
    the channel is in no bridge (manager.c, action_coreshowchannels).
    """

    application: str
    app_data: str
    duration_s: int | None = None
    bridge_id: str = ""


@dataclass(frozen=True, slots=True)
class ListComplete(Event):
    """QueueStatusComplete / CoreShowChannelsComplete: the end of a resync list."""

    list_name: str
    action_id: str


@dataclass(frozen=True, slots=True)
class FullyBooted(Event):
    """FullyBooted (at login, and after an Asterisk restart)."""

    uptime: int | None

