"""Call flows: the event sequences of each queue outcome, in the order real Asterisk 22 emits them.

Each function takes the time it starts at and emits through the call's :class:`Emitter`; the order of events
and their headers follow the recorded transcripts in ``tests/fixtures`` (see ``tests/test_demo_shape.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.sim.emit import Chan, Emitter

CALLERS, ENTRY, AGENTS = "demo-callers", "demo-entry", "demo-agents"
AFTER, SURVEY, VOICEMAIL, XFER = "demo-after-queue", "demo-survey", "demo-voicemail", "demo-xfer"
EXITKEY = "demo-exitkey"  # the queue's context= option: a key pressed while waiting leaves the queue for it
#: Withheld numbers as carriers deliver them (CallerIDNum), with the presentation they come with.
WITHHELD = {"anonymous": "32 (Presentation Prohibited, Not Screened)"}
ALLOWED = "0 (Presentation Allowed, Not Screened)"
MAILBOX = "100@default"
QUEUE_VARS = ("QUEUENAME", "QUEUEMAX", "QUEUESTRATEGY", "QUEUECALLS", "QUEUEHOLDTIME", "QUEUETALKTIME",
              "QUEUECOMPLETED", "QUEUEABANDONED", "QUEUESRVLEVEL", "QUEUESRVLEVELPERF")


@dataclass
class Call:
    """The two halves of an inbound call: the caller's phone ``;1`` and the queue channel ``;2``."""

    em: Emitter
    c1: Chan
    c2: Chan
    queue: str = ""
    abandoned_var: bool = False
    blind: bool = False


@dataclass
class Leg:
    """A queue member's Local pair while it rings or talks."""

    agent: str
    queue: str
    a1: Chan
    a2: Chan

    @property
    def interface(self) -> str:
        """The member interface (``/n``: Local members that never optimise away)."""
        return f"Local/{self.agent}@{AGENTS}/n"


def arrive(em: Emitter, t: float, number: str, queue: str) -> Call:
    """A caller dials in: the Local pair, caller id, Answer (the lab's Originate shape)."""
    c1, c2 = em.local_pair(number, CALLERS, None)
    em.chan_ev(t, "Newchannel", c1)
    em.chan_ev(t, "Newchannel", c2)
    em.chan_ev(t, "Newexten", c1, Extension=number, Application="AppDial2", AppData="(Outgoing Line)")
    name = "Anonymous" if number in WITHHELD else f"Caller {number}"
    pres = WITHHELD.get(number, ALLOWED)
    for ch in (c1, c2):
        ch.cid_num, ch.cid_name = number, name
        em.chan_ev(t, "NewCallerid", ch, **{"CID-CallingPres": pres})
        ch.conn_num, ch.conn_name = number, name
        em.chan_ev(t, "NewConnectedLine", ch)
    em.local_bridge(t, c1, c2)
    em.ev(t, "DialBegin", c1.snapshot("Dest"), DialString=f"{number}@{CALLERS}/n")
    em.exten(t, c2, "Set", f"CALLERID(num)={number}")
    em.exten(t, c2, "Set", f"CALLERID(name)={name}")
    em.exten(t, c2, "Goto", f"{ENTRY},{queue},1")
    call = Call(em, c1, c2)
    _entry(call, t, queue)
    em.exten(t, c2, "Answer")
    em.newstate(t, c2, 6)
    em.newstate(t, c1, 6)
    em.ev(t, "DialEnd", c1.snapshot("Dest"), DialStatus="ANSWER")
    return call


def _entry(call: Call, t: float, queue: str) -> None:
    call.em.goto(call.c2, ENTRY, queue)
    call.em.exten(t, call.c2, "NoOp", f"Inbound call for {queue}")
    call.em.exten(t, call.c2, "Set", f"DEMO_QUEUE={queue}")


def _queue_app(call: Call, t: float, queue: str, timeout: int) -> None:
    em, c2 = call.em, call.c2
    em.exten(t, c2, "Queue", f"{queue},ctT,,,{timeout}")
    for var in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS"):
        em.var(t, c2, var, "")
    if call.abandoned_var:
        em.var(t, c2, "ABANDONED", "")
        call.abandoned_var = False


def join(call: Call, t: float, queue: str, timeout: int) -> None:
    """Queue() accepts the caller: QueueCallerJoin (Position/Count filled in wire order), hold music."""
    call.queue = queue
    _queue_app(call, t, queue, timeout)
    call.em.ev(t, "QueueCallerJoin", call.c2.snapshot(), Queue=queue, Position="", Count="", _q="join")
    call.em.chan_ev(t, "MusicOnHoldStart", call.c2, Class="default")


def join_empty(call: Call, t: float, queue: str, timeout: int) -> None:
    """Queue() refuses the caller (no member can take it): no queue event at all, only QUEUESTATUS."""
    call.queue = queue
    _queue_app(call, t, queue, timeout)
    call.em.var(t, call.c2, "QUEUESTATUS", "JOINEMPTY")


def ring(call: Call, t: float, agent: str) -> Leg:
    """app_queue rings one member: its Local pair, AgentCalled, DialBegin, member status INUSE."""
    em, c2 = call.em, call.c2
    a1, a2 = em.local_pair(agent, AGENTS, call.c1.uid)
    leg = Leg(agent, call.queue, a1, a2)
    em.chan_ev(t, "Newchannel", a1)
    em.chan_ev(t, "Newchannel", a2)
    a1.cid_num, a1.cid_name = c2.cid_num, c2.cid_name
    em.chan_ev(t, "Newexten", a1, Extension=agent, Application="AppQueue", AppData="(Outgoing Line)")
    em.chan_ev(t, "NewCallerid", a1, **{"CID-CallingPres": "0 (Presentation Allowed, Not Screened)"})
    em.var(t, a1, "DIALEDPEERNUMBER", f"{agent}@{AGENTS}/n")
    em.var(t, a2, "DIALEDPEERNUMBER", f"{agent}@{AGENTS}/n")
    a2.cid_num, a2.cid_name, a2.conn_num, a2.conn_name = c2.cid_num, c2.cid_name, c2.cid_num, c2.cid_name
    em.chan_ev(t, "NewCallerid", a2, **{"CID-CallingPres": "0 (Presentation Allowed, Not Screened)"})
    em.chan_ev(t, "NewConnectedLine", a2)
    em.local_bridge(t, a1, a2)
    em.ev(t, "AgentCalled", c2.snapshot(), a1.snapshot("Dest"), Queue=call.queue, Interface=leg.interface,
          MemberName=agent)
    em.ev(t, "DialBegin", c2.snapshot(), a1.snapshot("Dest"), DialString=leg.interface)
    em.exten(t, a2, "Ringing")
    em.goto(a1, AGENTS, call.queue)
    em.newstate(t, a1, 5)
    em.chan_ev(t, "Newexten", a1, Extension=call.queue, Application="AppQueue", AppData="(Outgoing Line)")
    a1.conn_num, a1.conn_name = c2.cid_num, c2.cid_name
    em.chan_ev(t, "NewConnectedLine", a1)
    em.exten(t, a2, "Wait", "600")
    em.ev(t, "DialState", c2.snapshot(), a1.snapshot("Dest"), DialStatus="RINGING")
    em.member(t, "QueueMemberStatus", call.queue, agent, Status="2")
    return leg


def _drop_leg(call: Call, leg: Leg, t: float, first: str) -> None:
    em = call.em
    em.ev(t, "DialEnd", call.c2.snapshot(), leg.a1.snapshot("Dest"), DialStatus=first)
    em.ev(t, "DialEnd", call.c2.snapshot(), leg.a1.snapshot("Dest"), DialStatus="CANCEL")
    em.chan_ev(t, "HangupRequest", leg.a2, Cause="0")
    em.hangup(t, leg.a1, 0)
    em.chan_ev(t, "SoftHangupRequest", leg.a2, Cause="16")
    em.hangup(t, leg.a2, 0)
    em.member(t, "QueueMemberStatus", leg.queue, leg.agent, Status="1")


def ring_no_answer(call: Call, leg: Leg, t: float, ring_ms: int) -> None:
    """The member did not answer in time (RingTime in milliseconds)."""
    call.em.ev(t, "AgentRingNoAnswer", call.c2.snapshot(), leg.a1.snapshot("Dest"), Queue=leg.queue,
               Interface=leg.interface, MemberName=leg.agent, RingTime=str(ring_ms))
    _drop_leg(call, leg, t, "NOANSWER")


def queue_vars(call: Call, t: float, abandoned: int) -> None:
    """The QUEUE* statistics variables app_queue sets on the caller at every state change."""
    values = (call.queue, "0", "rrmemory", "1", "0", "0", "0", str(abandoned), "20", "0.0")
    for name, value in zip(QUEUE_VARS, values, strict=True):
        call.em.var(t, call.c2, name, value)


def _wait_vars(call: Call, t: float, wait_s: float) -> None:
    w = int(wait_s)
    for name, value in (("QUEUEWAIT", w), ("QUEUEWAIT_MS", int(wait_s * 1000)), ("DIALEDTIME", w),
                        ("DIALEDTIME_MS", int(wait_s * 1000) + 25), ("ANSWEREDTIME", 0), ("ANSWEREDTIME_MS", 0)):
        call.em.var(t, call.c2, name, str(value))


def _abandon_and_leave(call: Call, t: float, hold_s: float, timeout: bool) -> None:
    em = call.em
    em.var(t, call.c2, "ABANDONED", "TRUE")
    call.abandoned_var = True
    queue_vars(call, t, 0)
    em.ev(t, "QueueCallerAbandon", call.c2.snapshot(), Queue=call.queue, Position="", OriginalPosition="",
          HoldTime=str(int(hold_s)), _q="abandon")
    if timeout:
        _wait_vars(call, t, hold_s)
        em.chan_ev(t, "MusicOnHoldStop", call.c2)
    queue_vars(call, t, 1)
    em.ev(t, "QueueCallerLeave", call.c2.snapshot(), Queue=call.queue, Position="", Count="", _q="leave")
    em.var(t, call.c2, "QUEUEPOSITION", "")
    em.events[-1][1]["_q"] = "pos"


def abandon(call: Call, t: float, hold_s: float, ringing: Leg | None) -> None:
    """The caller hangs up while waiting: ``;1`` Hangup, agent legs, Abandon, Leave, queue channel Hangup."""
    em = call.em
    em.chan_ev(t, "HangupRequest", call.c2, Cause="16")
    em.hangup(t, call.c1)
    em.chan_ev(t, "MusicOnHoldStop", call.c2)
    if ringing is not None:
        em.ev(t, "DialEnd", call.c2.snapshot(), ringing.a1.snapshot("Dest"), DialStatus="CANCEL")
        em.ev(t, "DialEnd", call.c2.snapshot(), ringing.a1.snapshot("Dest"), DialStatus="CANCEL")
        em.chan_ev(t, "HangupRequest", ringing.a2, Cause="0")
        em.hangup(t, ringing.a1, 0)
    _wait_vars(call, t, hold_s)
    _abandon_and_leave(call, t, hold_s, timeout=False)
    em.chan_ev(t, "SoftHangupRequest", call.c2, Cause="16")
    em.hangup(t, call.c2)
    if ringing is not None:
        em.chan_ev(t, "SoftHangupRequest", ringing.a2, Cause="16")
        em.hangup(t, ringing.a2, 0)
        em.member(t, "QueueMemberStatus", ringing.queue, ringing.agent, Status="1")


def queue_timeout(call: Call, t: float, hold_s: float, ringing: Leg | None, status: str = "TIMEOUT") -> None:
    """Queue() gives up: QueueCallerAbandon (yes), Leave, QUEUESTATUS=TIMEOUT; the channel lives on.

    ``status="LEAVEEMPTY"``: the last member left while the caller waited (leavewhenempty; queue_log EXITEMPTY),
    the same events as a timeout (transcript ``exit_empty``).
    """
    if ringing is not None:
        _drop_leg(call, ringing, t, "CANCEL")
    _abandon_and_leave(call, t, hold_s, timeout=True)
    call.em.var(t, call.c2, "QUEUESTATUS", status)


def exit_key(call: Call, t: float, hold_s: float, ringing: Leg | None, digit: str, timeout: int) -> None:
    """The caller presses ``digit`` while waiting (queue ``context=``): only QueueCallerLeave, no QUEUESTATUS.

    As transcript ``exit_key``: DTMF, the ringing leg cancelled, the wait variables, the channel already in the
    exit context (a Newexten of Queue at priority 0 there), QueueCallerLeave; then that context's dialplan.
    """
    em, c2 = call.em, call.c2
    em.chan_ev(t - 0.25, "DTMFBegin", c2, Digit=digit, Direction="Received")
    em.chan_ev(t, "DTMFEnd", c2, Digit=digit, DurationMs="250", Direction="Received")
    if ringing is not None:
        em.ev(t, "DialEnd", c2.snapshot(), ringing.a1.snapshot("Dest"), DialStatus="CANCEL")
        em.ev(t, "DialEnd", c2.snapshot(), ringing.a1.snapshot("Dest"), DialStatus="CANCEL")
        em.chan_ev(t, "HangupRequest", ringing.a2, Cause="0")
        em.hangup(t, ringing.a1, 0)
        em.member(t, "QueueMemberStatus", ringing.queue, ringing.agent, Status="1")
    _wait_vars(call, t, hold_s)
    em.goto(c2, EXITKEY, digit)
    em.exten(t, c2, "Queue", f"{call.queue},ctT,,,{timeout}", priority=0)
    em.chan_ev(t, "MusicOnHoldStop", c2)
    queue_vars(call, t, 0)
    if ringing is not None:
        em.chan_ev(t, "SoftHangupRequest", ringing.a2, Cause="16")
        em.hangup(t, ringing.a2, 0)
    em.ev(t, "QueueCallerLeave", c2.snapshot(), Queue=call.queue, Position="", Count="", _q="leave")
    em.var(t, c2, "QUEUEPOSITION", "")
    em.events[-1][1]["_q"] = "pos"
    em.exten(t, c2, "NoOp", f"caller left {call.queue} with key {digit}")


def member_vars(call: Call, leg: Leg, t: float, ch: Chan) -> None:
    em = call.em
    em.var(t, ch, "MEMBERINTERFACE", leg.interface)
    em.var(t, ch, "MEMBERNAME", leg.agent)
    for name in ("MEMBERCALLS", "MEMBERLASTCALL"):
        em.var(t, ch, name, "")
        em.events[-1][1]["_m"] = f"{name}:{leg.queue}:{leg.agent}"
    em.var(t, ch, "MEMBERPENALTY", "0")
    em.var(t, ch, "MEMBERDYNAMIC", "1")
    em.var(t, ch, "MEMBERREALTIME", "0")
