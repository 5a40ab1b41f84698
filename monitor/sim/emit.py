"""Event building blocks of the simulator: channel snapshots and AMI events shaped like Asterisk 22's.

Uniqueids and Local channel sequence numbers are written as placeholders (``@U7@``, ``@L3@``) while a call
is planned, because calls are planned one at a time but their events interleave: :mod:`monitor.sim.live`
numbers them in wire order, as Asterisk does (``<epoch>.<n>``, ``-0000000n``).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

Event = tuple[float, dict[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
SNAPSHOT = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
            "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid")
BRIDGE_FIELDS = ("Uniqueid", "Type", "Technology", "Creator", "Name", "NumChannels", "VideoSourceMode")
UNKNOWN = "<unknown>"
PRIVILEGE = {
    "Newexten": "dialplan", "VarSet": "dialplan", "UserEvent": "user", "DTMFBegin": "dtmf", "DTMFEnd": "dtmf",
    "QueueCallerJoin": "agent", "QueueCallerLeave": "agent", "QueueCallerAbandon": "agent", "AgentCalled": "agent",
    "AgentRingNoAnswer": "agent", "AgentConnect": "agent", "AgentComplete": "agent", "QueueMemberStatus": "agent",
    "QueueMemberAdded": "agent", "QueueMemberRemoved": "agent", "QueueMemberPause": "agent",
}


@dataclass
class Chan:
    """A channel as its snapshot headers describe it (mutable: state, caller id and dialplan move)."""

    name: str
    uid: str
    linkedid: str
    state: int
    context: str
    exten: str
    priority: int = 1
    cid_num: str = UNKNOWN
    cid_name: str = UNKNOWN
    conn_num: str = UNKNOWN
    conn_name: str = UNKNOWN

    def snapshot(self, prefix: str = "") -> dict[str, str]:
        """The channel snapshot block, optionally prefixed (``Dest``, ``Transferee``...)."""
        values = (self.name, str(self.state), STATE_DESC.get(self.state, "Unknown"), self.cid_num, self.cid_name,
                  self.conn_num, self.conn_name, "en", "", self.context, self.exten, str(self.priority), self.uid,
                  self.linkedid)
        return {prefix + k: v for k, v in zip(SNAPSHOT, values, strict=True)}


@dataclass
class Bridge:
    """A basic two-party bridge."""

    uid: str
    members: int = 0

    def fields(self, prefix: str = "Bridge") -> dict[str, str]:
        """The bridge snapshot block."""
        values = (self.uid, "basic", "simple_bridge", UNKNOWN, UNKNOWN, str(self.members), "none")
        return {prefix + k: v for k, v in zip(BRIDGE_FIELDS, values, strict=True)}


@dataclass
class Emitter:
    """Collects the events of one planned call; allocates placeholder ids."""

    rng: random.Random
    next_id: list[int] = field(default_factory=lambda: [0])  # shared counter between emitters of one run
    events: list[Event] = field(default_factory=list)
    _tick: float = 0.0

    def _id(self) -> int:
        self.next_id[0] += 1
        return self.next_id[0]

    def uid(self) -> str:
        """A Uniqueid placeholder."""
        return f"@U{self._id()}@"

    def local_pair(self, exten: str, context: str, linkedid: str | None, state2: int = 4) -> tuple[Chan, Chan]:
        """A Local channel pair ``;1``/``;2`` (the ``;1`` half is created first, so owns the Linkedid)."""
        seq = f"@L{self._id()}@"
        base = f"Local/{exten}@{context}-{seq}"
        uid1 = self.uid()
        one = Chan(f"{base};1", uid1, linkedid or uid1, 0, context, exten)
        two = Chan(f"{base};2", self.uid(), linkedid or uid1, state2, context, exten)
        return one, two

    def bridge(self) -> Bridge:
        """A new bridge with a seeded UUID."""
        return Bridge(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))

    def ev(self, t: float, name: str, *blocks: dict[str, str], **extra: str) -> None:
        """Append one event at ``t`` (same-time events keep their order: a tiny tick is added)."""
        # Asterisk stamps every event with microseconds; a strictly increasing clock keeps the wire order
        # stable when several calls' events are merged by time.
        self._tick = max(self._tick + 0.000004, t)
        headers = {"Event": name, "Privilege": f"{PRIVILEGE.get(name, 'call')},all"}
        for b in blocks:
            headers.update(b)
        headers.update(extra)
        self.events.append((self._tick, headers))

    def chan_ev(self, t: float, name: str, ch: Chan, **extra: str) -> None:
        """An event carrying one channel snapshot."""
        self.ev(t, name, ch.snapshot(), **extra)

    def exten(self, t: float, ch: Chan, app: str, data: str = "", priority: int | None = None) -> None:
        """A Newexten (the channel runs a dialplan application)."""
        if priority is not None:
            ch.priority = priority
        self.chan_ev(t, "Newexten", ch, Extension=ch.exten, Application=app, AppData=data)
        ch.priority += 1

    def goto(self, ch: Chan, context: str, exten: str) -> None:
        """Move a channel in the dialplan (no event of its own)."""
        ch.context, ch.exten, ch.priority = context, exten, 1

    def var(self, t: float, ch: Chan, name: str, value: str) -> None:
        """A VarSet."""
        self.chan_ev(t, "VarSet", ch, Variable=name, Value=value)

    def newstate(self, t: float, ch: Chan, state: int) -> None:
        """A Newstate."""
        ch.state = state
        self.chan_ev(t, "Newstate", ch)

    def hangup(self, t: float, ch: Chan, cause: int = 16) -> None:
        """A Hangup (cause 16 Normal Clearing; 0 for member legs app_queue cancels)."""
        text = "Normal Clearing" if cause == 16 else "Unknown"
        self.chan_ev(t, "Hangup", ch, Cause=str(cause), **{"Cause-txt": text})

    def local_bridge(self, t: float, one: Chan, two: Chan, optimize: bool = False) -> None:
        """The LocalBridge event of a new Local pair."""
        self.ev(t, "LocalBridge", one.snapshot("LocalOne"), two.snapshot("LocalTwo"), Context=one.context,
                Exten=one.exten, LocalOptimization="Yes" if optimize else "No")

    def bridge_ev(self, t: float, name: str, br: Bridge, ch: Chan | None = None, **extra: str) -> None:
        """BridgeCreate/Enter/Leave/Destroy."""
        blocks = [br.fields()] + ([ch.snapshot()] if ch is not None else [])
        self.ev(t, name, *blocks, **extra)

    def member(self, t: float, name: str, queue: str, agent: str, **state: str) -> None:
        """A QueueMember* event; the live layer fills the member's current fields in Asterisk's order."""
        self.ev(t, name, Queue=queue, MemberName=agent, _member="1", **state)
