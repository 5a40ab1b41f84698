"""AMI headers -> typed events, with explicit header reads.

A missing required header is never read as ``''``: the message becomes a :class:`Skip` with a bounded
reason (``missing:<Event>.<Header>`` or ``bad_int:<Event>.<Header>``) that callers count and log.
Event types the tracker does not use return ``None`` (ignored, not an error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from monitor.core import events as ev
from monitor.core.vocab import SkipReason, skip_reason

HeaderMap = Mapping[str, "str | list[str]"]

#: VarSets that matter to the tracker; every other VarSet (the bulk of AMI traffic) is ignored cheaply.
TRACKED_VARIABLES = frozenset({"QUEUESTATUS", "ATTENDEDTRANSFER", "BLINDTRANSFER", "VMSTATUS"})
_SNAPSHOT = (
    "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
    "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid",
)
_SNAPSHOT_PREFIXES = ("Dest", "Queue", "Member", "Transferer", "Transferee", "Bridge", "Swap", "Source")
_USER_SKIP = frozenset({"Event", "Privilege", "Timestamp", "UserEvent", "SequenceNumber", "File", "Line", "Func"})


#: The caller snapshot of an Agent* event that carries none (``uniqueid`` empty).
NO_CALLER = ev.Chan("", "")
_MAX_TS = 4_102_444_800.0  # 2100-01-01: no real Asterisk Timestamp is later


@dataclass(frozen=True, slots=True)
class Skip:
    """A message that could not be normalised; ``reason`` is bounded (safe as a metric label)."""

    reason: str


class _Missing(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def event_time(raw: str) -> float | None:
    """An event's ``Timestamp`` value as the tracker reads it (epoch s), None if absent or unusable."""
    if not raw:
        return None
    try:
        ts = float(raw)
    except ValueError:
        return None
    return plausible_time(ts)


def plausible_time(ts: float) -> float | None:
    """``ts`` (epoch s, from ``float()`` of a ``Timestamp``) if the tracker may use it, else None."""
    # A NaN/inf or far-off value would poison the tracker clock (and its stale-call sweep): use "now" instead.
    return ts if 0.0 < ts < _MAX_TS else None


class _Reader:
    __slots__ = ("event", "h")

    def __init__(self, event: str, headers: HeaderMap) -> None:
        self.event = event
        self.h = headers

    def opt(self, key: str, default: str = "") -> str:
        v = self.h.get(key)
        if v is None:
            return default
        if isinstance(v, list):
            return v[0] if v else default
        return v

    def req(self, key: str) -> str:
        v = self.h.get(key)
        if v is None:
            raise _Missing(skip_reason(SkipReason.MISSING, f"{self.event}.{key}"))
        if isinstance(v, list):
            if not v:
                raise _Missing(skip_reason(SkipReason.MISSING, f"{self.event}.{key}"))
            return v[0]
        return v

    def req_nonempty(self, key: str) -> str:
        v = self.req(key)
        if not v:
            raise _Missing(skip_reason(SkipReason.MISSING, f"{self.event}.{key}"))
        return v

    def int_(self, key: str, default: int | None = None) -> int:
        raw = self.opt(key) if default is not None else self.req(key)
        if raw == "" and default is not None:
            return default
        try:
            return int(raw)
        except ValueError:
            try:
                return int(float(raw))
            except ValueError:
                if default is not None:
                    return default
                raise _Missing(skip_reason(SkipReason.BAD_INT, f"{self.event}.{key}")) from None

    def ts(self) -> float | None:
        return event_time(self.opt("Timestamp"))

    def chan(self, prefix: str = "") -> ev.Chan:
        # The hot path of most events (Newexten alone is half of what the tracker reads): plain string values
        # straight from the dict; anything else (a repeated header -> list, a missing Uniqueid) the careful way.
        g = self.h.get
        v = (g(prefix + "Uniqueid"), g(prefix + "Linkedid"), g(prefix + "Channel"), g(prefix + "CallerIDNum"),
             g(prefix + "CallerIDName"), g(prefix + "Context"), g(prefix + "Exten"), g(prefix + "Language"))
        uid = v[0]
        if type(uid) is str and uid and list not in map(type, v):
            w = cast("tuple[str | None, ...]", v)
            return ev.Chan(uid, w[1] or uid, w[2] or "", w[3] or "", w[4] or "", w[5] or "", w[6] or "", w[7] or "")
        return self._chan(prefix)

    def _chan(self, prefix: str) -> ev.Chan:
        return ev.Chan(
            uniqueid=self.req_nonempty(prefix + "Uniqueid"),
            linkedid=self.opt(prefix + "Linkedid") or self.req_nonempty(prefix + "Uniqueid"),
            channel=self.opt(prefix + "Channel"),
            caller_num=self.opt(prefix + "CallerIDNum"),
            caller_name=self.opt(prefix + "CallerIDName"),
            context=self.opt(prefix + "Context"),
            exten=self.opt(prefix + "Exten"),
            language=self.opt(prefix + "Language"),
        )


def _newchannel(r: _Reader) -> ev.Event:
    return ev.Newchannel(r.ts(), r.chan())


def _rename(r: _Reader) -> ev.Event:
    return ev.Rename(r.ts(), r.chan(), r.req_nonempty("Newname"))


def _newexten(r: _Reader) -> ev.Event:
    return ev.Newexten(r.ts(), r.chan(), r.req("Application"), r.opt("AppData"))


def _varset(r: _Reader) -> ev.Event | None:
    var = r.req("Variable")
    if var.lstrip("_").upper() not in TRACKED_VARIABLES:
        return None
    return ev.VarSet(r.ts(), r.chan(), var.lstrip("_").upper(), r.opt("Value"))


def _hangup(r: _Reader) -> ev.Event:
    return ev.Hangup(r.ts(), r.chan(), r.opt("Cause"))


def _join(r: _Reader) -> ev.Event:
    return ev.QueueCallerJoin(r.ts(), r.chan(), r.req_nonempty("Queue"), r.int_("Position", 0), r.int_("Count", 0))


def _leave(r: _Reader) -> ev.Event:
    return ev.QueueCallerLeave(r.ts(), r.chan(), r.req_nonempty("Queue"), r.int_("Position", 0), r.int_("Count", 0))


def _abandon(r: _Reader) -> ev.Event:
    return ev.QueueCallerAbandon(
        r.ts(), r.chan(), r.req_nonempty("Queue"), r.int_("Position", 0), r.int_("OriginalPosition", 0),
        r.int_("HoldTime"),
    )


def _agent_base(r: _Reader) -> tuple[float | None, ev.Chan, str, str, str, str, str]:
    member = r.opt("MemberName") or r.opt("Interface")
    if not member:
        raise _Missing(skip_reason(SkipReason.MISSING, f"{r.event}.MemberName"))
    # The caller's snapshot is absent when its channel was destroyed just before app_queue raised the event
    # (seen on AgentComplete, Asterisk 20 and 22): the tracker then correlates by queue + member.
    chan = r.chan() if r.opt("Uniqueid") else NO_CALLER
    return (
        r.ts(), chan, r.req_nonempty("Queue"), member, r.opt("Interface") or r.opt("Member"),
        r.opt("DestUniqueid"), r.opt("DestChannel"),
    )


def _agent_called(r: _Reader) -> ev.Event:
    return ev.AgentCalled(*_agent_base(r))


def _agent_rna(r: _Reader) -> ev.Event:
    return ev.AgentRingNoAnswer(*_agent_base(r), ring_ms=r.int_("RingTime", 0))


def _agent_connect(r: _Reader) -> ev.Event:
    return ev.AgentConnect(*_agent_base(r), hold_time=r.int_("HoldTime"), ring_time=r.int_("RingTime", 0))


def _agent_complete(r: _Reader) -> ev.Event:
    return ev.AgentComplete(
        *_agent_base(r), hold_time=r.int_("HoldTime", 0), talk_time=r.int_("TalkTime"),
        reason=r.opt("Reason", "unknown").lower(),
    )


def _agent_dump(r: _Reader) -> ev.Event:
    return ev.AgentDump(*_agent_base(r))


def _blind(r: _Reader) -> ev.Event:
    return ev.BlindTransfer(
        r.ts(), r.req("Result"), r.opt("TransfererUniqueid"), r.req_nonempty("TransfereeUniqueid"),
        r.opt("TransfereeLinkedid") or r.opt("TransfererLinkedid"), r.opt("Extension"), r.opt("Context"),
    )


def _attended(r: _Reader) -> ev.Event:
    return ev.AttendedTransfer(
        r.ts(), r.req("Result"), r.opt("OrigTransfererUniqueid"), r.opt("TransfereeUniqueid"),
        r.opt("TransfereeLinkedid") or r.opt("OrigTransfererLinkedid"), r.opt("DestType"),
        r.opt("TransferTargetChannel"), r.opt("DestApp"), r.opt("DestExten") or r.opt("Extension"),
    )


def _is_snapshot_key(k: str) -> bool:
    if k in _SNAPSHOT:
        return True
    for p in _SNAPSHOT_PREFIXES:
        if k.startswith(p) and k[len(p):] in _SNAPSHOT:
            return True
    return False


def _user(r: _Reader) -> ev.Event:
    fields: list[tuple[str, str]] = []
    for k, v in r.h.items():
        if k in _USER_SKIP or k.startswith("_") or _is_snapshot_key(k):
            continue
        fields.append((k, v[0] if isinstance(v, list) and v else v if isinstance(v, str) else ""))
    return ev.UserEvent(r.ts(), r.chan(), r.req_nonempty("UserEvent"), tuple(fields))


def _member(kind: str) -> Callable[[_Reader], ev.Event]:
    def build(r: _Reader) -> ev.Event:
        member = r.opt("MemberName") or r.opt("Name") or r.opt("Interface") or r.opt("Location")
        if not member:
            raise _Missing(skip_reason(SkipReason.MISSING, f"{r.event}.MemberName"))
        paused = r.opt("Paused", "0").strip().lower() in ("1", "true", "yes")
        return ev.MemberEvent(
            r.ts(), kind, r.req_nonempty("Queue"), member, r.opt("Interface") or r.opt("Location"),
            r.int_("Status", 0), paused, r.opt("PausedReason"), r.opt("InCall", "0") == "1",
            r.opt("StateInterface"), r.int_("LoginTime", 0), r.int_("LastPause", 0), r.int_("Wrapuptime", 0),
        )

    return build


def _dial_base(r: _Reader) -> tuple[float | None, str, str, str, str, str, str, str]:
    return (r.ts(), r.opt("Channel"), r.opt("Uniqueid"), r.opt("Exten"), r.opt("DestChannel"),
            r.req_nonempty("DestUniqueid"), r.opt("DestCallerIDNum"), r.opt("DestExten"))


def _dial_begin(r: _Reader) -> ev.Event:
    return ev.DialBegin(*_dial_base(r), dial_string=r.opt("DialString"))


def _dial_end(r: _Reader) -> ev.Event:
    return ev.DialEnd(*_dial_base(r), dial_status=r.opt("DialStatus").upper())


def _params(r: _Reader) -> ev.Event:
    return ev.QueueParams(r.ts(), r.req_nonempty("Queue"))


def _entry(r: _Reader) -> ev.Event:
    # QueueEntry has no Linkedid header: '' says "not known" (the resync joins it from CoreShowChannel), never
    # the Uniqueid, which is another channel's id whenever the caller's ;1 leg came first.
    chan = r.chan()
    if not r.opt("Linkedid"):
        chan = ev.Chan(chan.uniqueid, "", chan.channel, chan.caller_num, chan.caller_name, chan.context,
                       chan.exten, chan.language)
    return ev.QueueEntry(r.ts(), chan, r.req_nonempty("Queue"), r.int_("Position", 0), r.int_("Wait", 0))


def duration_s(text: str) -> int | None:
    """CoreShowChannel ``Duration`` (``HH:MM:SS``, hours may exceed 24) in seconds; None if malformed."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    h, m, s = (int(p) for p in parts)
    return h * 3600 + m * 60 + s


def _listed(r: _Reader) -> ev.Event:
    return ev.CoreShowChannel(r.ts(), r.chan(), r.opt("Application"), r.opt("ApplicationData"),
                              duration_s(r.opt("Duration")), r.opt("BridgeId").strip())


def _complete(name: str) -> Callable[[_Reader], ev.Event]:
    return lambda r: ev.ListComplete(r.ts(), name, r.opt("ActionID"))


def _booted(r: _Reader) -> ev.Event:
    up = r.opt("Uptime")
    return ev.FullyBooted(r.ts(), int(up) if up.isdigit() else None)


_BUILDERS: dict[str, Callable[[_Reader], ev.Event | None]] = {
    "Newchannel": _newchannel,
    "Newexten": _newexten,
    "Rename": _rename,
    "VarSet": _varset,
    "Hangup": _hangup,
    "QueueCallerJoin": _join,
    "QueueCallerLeave": _leave,
    "QueueCallerAbandon": _abandon,
    "AgentCalled": _agent_called,
    "AgentRingNoAnswer": _agent_rna,
    "AgentConnect": _agent_connect,
    "AgentComplete": _agent_complete,
    "AgentDump": _agent_dump,
    "BlindTransfer": _blind,
    "AttendedTransfer": _attended,
    "UserEvent": _user,
    "QueueMemberAdded": _member("added"),
    "QueueMemberRemoved": _member("removed"),
    "QueueMemberStatus": _member("status"),
    "QueueMemberPause": _member("pause"),
    "QueueMemberPaused": _member("pause"),
    "QueueMember": _member("list"),
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "QueueParams": _params,
    "QueueEntry": _entry,
    "CoreShowChannel": _listed,
    "QueueStatusComplete": _complete("QueueStatus"),
    "CoreShowChannelsComplete": _complete("CoreShowChannels"),
    "FullyBooted": _booted,
}


#: Events only Asterisk 11 and older send (the AMI 1.x event set): their streams cannot be counted right here, so
#: the first one is reported as ``unsupported:<Event>`` (qmon supports the AMI 2 event set, Asterisk 13 and later).
#: Join/Leave became QueueCallerJoin/Leave, Link/Unlink/Bridge the Bridge* family, Dial DialBegin/DialEnd in 12.
OLD_AMI_EVENTS = frozenset({"Join", "Leave", "Link", "Unlink", "Bridge", "Dial", "Masquerade", "Newcallerid"})


def old_ami_banner(banner: str) -> bool:
    """True for the banner of Asterisk 11 or older (``Asterisk Call Manager/1.x``; 12-13 say 2.x, 20 9.0.0, 22
    11.0.0): the AMI 1.x event set. A modern banner does not prove modern events (see ``OLD_AMI_EVENTS``)."""
    _, _, version = banner.strip().rpartition("/")
    return banner.startswith("Asterisk Call Manager/") and version.split(".", 1)[0] in ("0", "1")


class UnsupportedAsterisk(Skip):
    """An event of the AMI 1.x generation (Asterisk 11 and older): the stream is not one qmon can count."""


def tracked_events() -> frozenset[str]:
    """Every AMI event name the normaliser reads: those it turns into a tracker event, and the AMI 1.x ones it
    turns into an ``unsupported:`` skip (so a fast path keeps them and an Asterisk 11 stream is still refused);
    all others normalise to None."""
    return frozenset(_BUILDERS) | OLD_AMI_EVENTS


def event_builders() -> dict[str, Callable[..., object]]:
    """Event name -> the function building its tracker event (read-only use: the wire fast path inspects them)."""
    return dict(_BUILDERS)


def event_name(headers: HeaderMap) -> str | None:
    """The ``Event`` header, or None for responses and garbage."""
    v = headers.get("Event")
    if isinstance(v, list):
        return v[0] if v else None
    return v


def normalize(headers: HeaderMap) -> ev.Event | Skip | None:
    """Normalise one AMI message; None when the tracker has no use for it."""
    name = event_name(headers)
    if not name:
        return None
    build = _BUILDERS.get(name)
    if build is None:
        if name in OLD_AMI_EVENTS:
            return UnsupportedAsterisk(skip_reason(SkipReason.UNSUPPORTED, name))
        return None
    try:
        return build(_Reader(name, headers))
    except _Missing as exc:
        return Skip(exc.reason)
