"""The wire-order layer: numbers placeholders, fills positions and member fields, mirrors live state.

Asterisk numbers channels and computes queue positions as events happen; the planner cannot (calls are
planned one at a time), so each event passes through :class:`Live` in time order. The mirror it keeps
answers QueueStatus and CoreShowChannels exactly as the stream so far implies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PLACEHOLDER = re.compile(r"@([UL])(\d+)@")
MEMBER_FIELDS = ("Queue", "MemberName", "Interface", "StateInterface", "Membership", "Penalty", "CallsTaken",
                 "LastCall", "LastPause", "LoginTime", "InCall", "Status", "Paused", "PausedReason", "Ringinuse",
                 "Wrapuptime")


@dataclass
class MemberState:
    """What Asterisk reports about one queue member."""

    queue: str
    name: str
    login: int
    calls: int = 0
    last_call: int = 0
    last_pause: int = 0
    in_call: int = 0
    status: int = 1
    paused: bool = False
    reason: str = ""

    @property
    def interface(self) -> str:
        """The member's Local interface."""
        return f"Local/{self.name}@demo-agents/n"


@dataclass
class Waiting:
    """A caller waiting in a queue (a QueueEntry)."""

    uid: str
    channel: str
    num: str
    name: str
    join_ts: float
    original: int


@dataclass
class Live:
    """Renumbers ids and tracks queue/member/channel state in wire order."""

    names: dict[str, str] = field(default_factory=dict)
    seq: int = 0
    local_seq: int = 0
    members: dict[tuple[str, str], MemberState] = field(default_factory=dict)
    waiting: dict[str, list[Waiting]] = field(default_factory=dict)
    channels: dict[str, dict[str, str]] = field(default_factory=dict)
    last_position: dict[str, int] = field(default_factory=dict)
    voicemail_new: int = 0
    queue_names: list[str] = field(default_factory=list)

    def resolve(self, text: str, t: float = 0.0) -> str:
        """Replace placeholders by real ids (allocated on first sight, in wire order)."""
        if "@" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self._name(m.group(0), m.group(1), t), text)

    def _name(self, key: str, kind: str, t: float) -> str:
        name = self.names.get(key)
        if name is None:
            if kind == "U":
                name = f"{int(t)}.{self.seq}"
                self.seq += 1
            else:
                self.local_seq += 1
                name = f"{self.local_seq:08x}"
            self.names[key] = name
        return name

    def apply(self, t: float, raw: dict[str, str]) -> dict[str, str] | None:
        """The event as sent on the wire (hidden ``_`` keys consumed), updating the mirror.

        None for a member event of an agent who is not (or no longer) a member: app_queue sends nothing then.
        """
        h = {k: self.resolve(v, t) for k, v in raw.items()}
        h = {"Event": h["Event"], "Privilege": h["Privilege"], "Timestamp": f"{t:.6f}",
             **{k: v for k, v in h.items() if k not in ("Event", "Privilege")}}
        if "_q" in h:
            self._queue_op(t, h, h.pop("_q"))
        if "_member" in h:
            member = self._member(t, h)
            if member is None:
                return None
            h = member
        if "_m" in h:
            kind, queue, agent = h.pop("_m").split(":")
            m = self.members.get((queue, agent))
            h["Value"] = str((m.calls if kind == "MEMBERCALLS" else m.last_call) if m else 0)
        if "_vm" in h:
            kind = h.pop("_vm")
            if kind == "file":
                h["Value"] = f"/var/spool/asterisk/voicemail/default/100/INBOX/msg{self.voicemail_new:04d}"
            else:
                self.voicemail_new += 1
                h["New"] = str(self.voicemail_new)
        self._channels(h)
        return h

    def _queue_op(self, t: float, h: dict[str, str], op: str) -> None:
        uid = h.get("Uniqueid", "")
        if op == "origpos":
            h["Value"] = str(next((w.original for q in self.waiting.values() for w in q if w.uid == uid), 1))
            return
        if op == "pos":
            h["Value"] = str(self.last_position.get(uid, 1))
            return
        queue = h["Queue"]
        line = self.waiting.setdefault(queue, [])
        if op == "join":
            line.append(Waiting(uid, h["Channel"], h["CallerIDNum"], h["CallerIDName"], t, len(line) + 1))
            h["Position"] = h["Count"] = str(len(line))
            return
        idx = next((i for i, w in enumerate(line) if w.uid == uid), None)
        pos = (idx + 1) if idx is not None else 1
        self.last_position[uid] = pos
        h["Position"] = str(pos)
        if op == "abandon":
            h["OriginalPosition"] = str(line[idx].original if idx is not None else 1)
        else:  # leave
            if idx is not None:
                del line[idx]
            h["Count"] = str(len(line))

    def _member(self, t: float, h: dict[str, str]) -> dict[str, str] | None:
        h.pop("_member")
        key = (h["Queue"], h["MemberName"])
        m = self.members.get(key)
        if m is None:
            if h["Event"] != "QueueMemberAdded":
                return None  # logged out meanwhile (a call of theirs ended after QueueRemove)
            m = self.members[key] = MemberState(key[0], key[1], int(t))
        if "Status" in h:
            m.status = int(h["Status"])
        if h.pop("_done", None):
            m.calls += 1
            m.last_call = int(t)
        if "Paused" in h:
            m.paused = h["Paused"] == "1"
            m.reason = h.get("PausedReason", "") if m.paused else ""
            m.last_pause = int(t) if m.paused else m.last_pause
        out = {"Event": h["Event"], "Privilege": h["Privilege"], "Timestamp": h["Timestamp"]}
        out.update(zip(MEMBER_FIELDS, self.member_values(m), strict=True))
        out["Ringinuse"] = "0"
        if h["Event"] == "QueueMemberRemoved":
            self.members.pop(key, None)
        return out

    @staticmethod
    def member_values(m: MemberState) -> tuple[str, ...]:
        """A member's fields in Asterisk's order (as in MEMBER_FIELDS)."""
        return (m.queue, m.name, m.interface, m.interface, "dynamic", "0", str(m.calls), str(m.last_call),
                str(m.last_pause), str(m.login), str(m.in_call), str(m.status), "1" if m.paused else "0",
                m.reason, "0", "0")

    def _channels(self, h: dict[str, str]) -> None:
        uid = h.get("Uniqueid")
        if uid is None or "Channel" not in h:
            return
        if h["Event"] == "Hangup":
            self.channels.pop(uid, None)
            for line in self.waiting.values():  # a caller gone without Leave (never in Asterisk; be safe)
                line[:] = [w for w in line if w.uid != uid]
        else:
            self.channels[uid] = {k: h[k] for k in ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum",
                                                    "CallerIDName", "ConnectedLineNum", "ConnectedLineName",
                                                    "Language", "AccountCode", "Context", "Exten", "Priority",
                                                    "Uniqueid", "Linkedid") if k in h}
