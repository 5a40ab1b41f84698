"""Call flows once a member answers: connect, hang-ups, blind and attended transfers."""

from __future__ import annotations

from monitor.sim.emit import UNKNOWN, Bridge, Chan
from monitor.sim.flows import AGENTS, ENTRY, XFER, Call, Leg, member_vars, queue_vars


def connect(call: Call, leg: Leg, t: float, hold_s: float, ring_s: float) -> Bridge:
    """The member answers: QueueCallerLeave comes before AgentConnect, then the two enter a bridge."""
    em, c2 = call.em, call.c2
    em.exten(t, leg.a2, "Answer")
    em.newstate(t, leg.a2, 6)
    em.newstate(t, leg.a1, 6)
    em.ev(t, "DialEnd", c2.snapshot(), leg.a1.snapshot("Dest"), DialStatus="ANSWER")
    em.chan_ev(t, "MusicOnHoldStop", c2)
    member_vars(call, leg, t, c2)
    member_vars(call, leg, t, leg.a1)
    for ch in (c2, leg.a1):
        em.var(t, ch, "QEHOLDTIME", str(int(hold_s)))
        em.var(t, ch, "QEORIGINALPOS", "")
        em.events[-1][1]["_q"] = "origpos"
    queue_vars(call, t, 0)
    em.ev(t, "QueueCallerLeave", c2.snapshot(), Queue=leg.queue, Position="", Count="", _q="leave")
    em.var(t, c2, "QUEUEPOSITION", "")
    em.events[-1][1]["_q"] = "pos"
    em.var(t, c2, "QUEUEWAIT", str(int(hold_s)))
    em.var(t, c2, "QUEUEWAIT_MS", str(int(hold_s * 1000)))
    em.ev(t, "AgentConnect", c2.snapshot(), leg.a1.snapshot("Dest"), Queue=leg.queue, Interface=leg.interface,
          MemberName=leg.agent, HoldTime=str(int(hold_s)), RingTime=str(int(ring_s)))
    br = em.bridge()
    em.bridge_ev(t, "BridgeCreate", br)
    for ch in (leg.a1, c2):
        br.members += 1
        em.bridge_ev(t, "BridgeEnter", br, ch)
    if call.blind:  # the channel still carries the variable of the transfer that brought it here
        em.var(t, c2, "BLINDTRANSFER", "")
        call.blind = False
    em.var(t, leg.a1, "BRIDGEPEER", c2.name)
    em.var(t, c2, "BRIDGEPEER", leg.a1.name)
    em.exten(t + 0.015, leg.a2, "Wait", "talk")
    return br


def _complete(call: Call, leg: Leg, t: float, hold_s: float, talk_s: float, reason: str) -> None:
    call.em.ev(t, "AgentComplete", call.c2.snapshot(), leg.a1.snapshot("Dest"), Queue=leg.queue,
               Interface=leg.interface, MemberName=leg.agent, HoldTime=str(int(hold_s)),
               TalkTime=str(int(talk_s)), Reason=reason)


def _leave(call: Call, br: Bridge, t: float, ch: Chan) -> None:
    br.members -= 1
    call.em.bridge_ev(t, "BridgeLeave", br, ch)


def _stats(call: Call, t: float, hold_s: float, talk_s: float, dialed: bool = True) -> None:
    em, c2 = call.em, call.c2
    if dialed:
        queue_vars(call, t, 0)
    em.var(t, c2, "ANSWEREDTIME", str(int(talk_s)))
    em.var(t, c2, "ANSWEREDTIME_MS", str(int(talk_s * 1000)))
    if not dialed:
        queue_vars(call, t, 0)
    else:
        em.var(t, c2, "DIALEDTIME", str(int(hold_s + talk_s)))
        em.var(t, c2, "DIALEDTIME_MS", str(int((hold_s + talk_s) * 1000)))
        queue_vars(call, t, 0)


def _member_done(call: Call, leg: Leg, t: float) -> None:
    call.em.member(t, "QueueMemberStatus", leg.queue, leg.agent, Status="1", _done="1")


def agent_hangup(call: Call, leg: Leg, br: Bridge, t: float, hold_s: float, talk_s: float) -> None:
    """The member hangs up; the caller stays in the dialplan (QUEUESTATUS=CONTINUE)."""
    em = call.em
    em.exten(t, leg.a2, "Hangup")
    em.chan_ev(t, "SoftHangupRequest", leg.a2, Cause="16")
    em.chan_ev(t, "HangupRequest", leg.a1, Cause="16")
    _complete(call, leg, t, hold_s, talk_s, "agent")
    em.hangup(t, leg.a2)
    em.var(t, leg.a1, "BRIDGEPEER", "")
    em.var(t, call.c2, "BRIDGEPEER", "")
    _leave(call, br, t, leg.a1)
    em.hangup(t, leg.a1)
    _leave(call, br, t, call.c2)
    _member_done(call, leg, t)
    _stats(call, t, hold_s, talk_s)
    em.var(t, call.c2, "QUEUESTATUS", "CONTINUE")


def caller_hangup(call: Call, leg: Leg, br: Bridge, t: float, hold_s: float, talk_s: float) -> None:
    """The caller hangs up during the conversation: AgentComplete Reason caller, no survey."""
    em, c2 = call.em, call.c2
    em.chan_ev(t, "HangupRequest", c2, Cause="16")
    em.hangup(t, call.c1)
    _complete(call, leg, t, hold_s, talk_s, "caller")
    em.var(t, c2, "BRIDGEPEER", "")
    em.var(t, leg.a1, "BRIDGEPEER", "")
    _leave(call, br, t, c2)
    _stats(call, t, hold_s, talk_s)
    em.var(t, c2, "QUEUESTATUS", "CONTINUE")
    em.chan_ev(t, "SoftHangupRequest", c2, Cause="16")
    em.hangup(t, c2)
    _leave(call, br, t + 0.002, leg.a1)
    em.chan_ev(t, "HangupRequest", leg.a2, Cause="16")
    em.bridge_ev(t, "BridgeDestroy", br)
    em.chan_ev(t, "SoftHangupRequest", leg.a2, Cause="16")
    em.hangup(t, leg.a2)
    em.hangup(t, leg.a1)
    _member_done(call, leg, t)


def blind_transfer(call: Call, leg: Leg, br: Bridge, t: float, hold_s: float, talk_s: float, queue: str) -> None:
    """The member blind-transfers the caller to another queue's entry (same channel, same Uniqueid)."""
    em, c2 = call.em, call.c2
    em.chan_ev(t, "Unhold", leg.a1)
    em.var(t, leg.a1, "BLINDTRANSFER", c2.name)
    em.var(t, c2, "BLINDTRANSFER", leg.a1.name)
    call.blind = True
    em.var(t, leg.a1, "BRIDGEPEER", "")
    em.ev(t, "BlindTransfer", {"Result": "Success"}, leg.a1.snapshot("Transferer"), c2.snapshot("Transferee"),
          br.fields(), IsExternal="Yes", Context=ENTRY, Extension=queue)
    em.var(t, c2, "BRIDGEPEER", "")
    em.goto(c2, ENTRY, queue)
    _leave(call, br, t, c2)
    em.var(t, c2, "DIALEDTIME", str(int(hold_s + talk_s)))
    em.var(t, c2, "DIALEDTIME_MS", str(int((hold_s + talk_s) * 1000)))
    _complete(call, leg, t, hold_s, talk_s, "transfer")
    _stats(call, t, hold_s, talk_s, dialed=False)
    _leave(call, br, t, leg.a1)
    em.chan_ev(t, "HangupRequest", leg.a2, Cause="16")
    em.hangup(t, leg.a1)
    em.bridge_ev(t, "BridgeDestroy", br)
    em.chan_ev(t, "SoftHangupRequest", leg.a2, Cause="16")
    em.hangup(t, leg.a2)
    _member_done(call, leg, t)
    em.exten(t, c2, "NoOp", f"Inbound call for {queue}")
    em.exten(t, c2, "Set", f"DEMO_QUEUE={queue}")
    em.exten(t, c2, "Answer")


# Long on purpose: the attended transfer's ~40 events in the order the attended_transfer recording shows them
# (DTMF, Hold, consult bridge, BridgeMerge, AttendedTransfer, optimisation swap); split, the order would be lost.
def attended_transfer(call: Call, leg: Leg, br: Bridge, t: float, hold_s: float, connect_t: float, hang_t: float,
                      exten: str, target: str) -> Leg:
    """Atxfer to ``exten@demo-xfer`` (Dial of another agent); the transferer hangs up at ``hang_t``.

    Returns the leg of the second agent, who then talks with the caller outside app_queue.
    """
    em, c2, a1 = call.em, call.c2, leg.a1
    em.var(t, a1, "TRANSFER_CONTEXT", XFER)
    for i, digit in enumerate(("*", "2")):
        em.chan_ev(t + 0.16 * i, "DTMFEnd", a1, Digit=digit, DurationMs="0", Direction="Received")
    t += 0.26
    em.chan_ev(t, "Hold", a1)
    em.chan_ev(t, "MusicOnHoldStart", c2, Class="default")
    for i, digit in enumerate(exten):
        em.chan_ev(t + 0.06 * (i + 1), "DTMFEnd", a1, Digit=digit, DurationMs="0", Direction="Received")
    t += 0.06 * (len(exten) + 1)
    x1, x2 = em.local_pair(exten, XFER, call.c1.uid)
    em.chan_ev(t, "Newchannel", x1)
    em.chan_ev(t, "Newchannel", x2)
    for ch in (x1, x2):
        em.var(t, ch, "ATTENDEDTRANSFER", a1.name)
    consult = em.bridge()
    em.bridge_ev(t, "BridgeCreate", consult)
    em.local_bridge(t, x1, x2, optimize=True)
    x2.cid_num, x2.cid_name = c2.cid_num, c2.cid_name
    em.exten(t, x2, "Dial", f"Local/{target}@{AGENTS}/n,30")
    b1, b2 = em.local_pair(target, AGENTS, call.c1.uid)
    em.chan_ev(t, "Newchannel", b1)
    em.chan_ev(t, "Newchannel", b2)
    b1.cid_num, b1.conn_num, b1.conn_name = exten, c2.cid_num, c2.cid_name
    em.chan_ev(t, "Newexten", b1, Extension=exten, Application="AppDial", AppData="(Outgoing Line)")
    em.local_bridge(t, b1, b2)
    em.ev(t, "DialBegin", x2.snapshot(), b1.snapshot("Dest"), DialString=f"{target}@{AGENTS}/n")
    x1.conn_num, x1.conn_name = c2.cid_num, c2.cid_name
    consult.members += 1
    em.bridge_ev(t, "BridgeEnter", consult, x1)
    em.var(t, x1, "ATTENDEDTRANSFER", "")
    b2.cid_num, b2.cid_name, b2.conn_num = c2.cid_num, c2.cid_name, exten
    em.exten(t, b2, "Ringing")
    em.newstate(t, b1, 5)
    em.newstate(t, x1, 5)
    em.ev(t, "DialState", x2.snapshot(), b1.snapshot("Dest"), DialStatus="RINGING")
    em.ev(t, "DialState", x1.snapshot("Dest"), DialStatus="RINGING")
    br.members -= 1
    em.bridge_ev(t, "BridgeLeave", br, a1)
    consult.members += 1
    em.bridge_ev(t, "BridgeEnter", consult, a1)
    em.var(t, x1, "BRIDGEPEER", a1.name)
    em.var(t, a1, "BRIDGEPEER", x1.name)
    t += 2.0
    em.exten(t, b2, "Answer")
    em.newstate(t, b2, 6)
    em.newstate(t, b1, 6)
    em.var(t, x2, "DIALSTATUS", "ANSWER")
    em.ev(t, "DialEnd", x2.snapshot(), b1.snapshot("Dest"), DialStatus="ANSWER")
    em.newstate(t, x2, 6)
    inner = em.bridge()
    em.bridge_ev(t, "BridgeCreate", inner)
    for ch in (b1, x2):
        inner.members += 1
        em.bridge_ev(t, "BridgeEnter", inner, ch)
    em.newstate(t, x1, 6)
    em.ev(t, "DialEnd", x1.snapshot("Dest"), DialStatus="ANSWER")
    em.var(t, b1, "BRIDGEPEER", x2.name)
    em.var(t, x2, "BRIDGEPEER", b1.name)
    t = max(t + 1.0, hang_t)
    em.exten(t, leg.a2, "Hangup")
    em.chan_ev(t, "SoftHangupRequest", leg.a2, Cause="16")
    em.chan_ev(t, "HangupRequest", a1, Cause="16")
    em.hangup(t, leg.a2)
    em.var(t, a1, "BRIDGEPEER", "")
    em.ev(t, "BridgeMerge", br.fields("ToBridge"), consult.fields("FromBridge"))
    consult.members -= 1
    em.bridge_ev(t, "BridgeLeave", consult, x1)
    br.members += 1
    em.bridge_ev(t, "BridgeEnter", br, x1)
    em.chan_ev(t, "MusicOnHoldStop", c2)
    em.var(t, c2, "BRIDGEPEER", x1.name)
    em.var(t, x1, "BRIDGEPEER", c2.name)
    c2.conn_num = c2.conn_name = UNKNOWN
    em.chan_ev(t, "NewConnectedLine", c2)
    consult.members -= 1
    em.bridge_ev(t, "BridgeLeave", consult, a1)
    consult.members = 2  # Asterisk reports the consult bridge as it was when the transfer began
    em.ev(t, "AttendedTransfer", {"Result": "Success"}, a1.snapshot("OrigTransferer"), br.fields("OrigBridge"),
          a1.snapshot("SecondTransferer"), consult.fields("SecondBridge"), c2.snapshot("Transferee"),
          x1.snapshot("TransferTarget"), IsExternal="No", DestType="Bridge", DestBridgeUniqueid=br.uid)
    consult.members = 0
    _complete(call, leg, t, hold_s, t - connect_t, "transfer")
    em.bridge_ev(t, "BridgeDestroy", consult)
    em.hangup(t, a1)
    _member_done(call, leg, t)
    t += 0.45
    em.ev(t, "LocalOptimizationBegin", x1.snapshot("LocalOne"), x2.snapshot("LocalTwo"), b1.snapshot("Source"),
          DestUniqueId=x1.uid, Id="0")
    inner.members -= 1
    em.bridge_ev(t, "BridgeLeave", inner, b1)
    em.var(t, x1, "BRIDGEPEER", "")
    em.bridge_ev(t, "BridgeLeave", br, x1)
    em.bridge_ev(t, "BridgeEnter", br, b1, SwapUniqueid=x1.uid)
    em.var(t, c2, "BRIDGEPEER", b1.name)
    em.var(t, b1, "BRIDGEPEER", c2.name)
    em.var(t, x2, "BRIDGEPEER", "")
    em.ev(t, "LocalOptimizationEnd", x1.snapshot("LocalOne"), x2.snapshot("LocalTwo"), Success="No", Id="0")
    em.chan_ev(t, "HangupRequest", x2, Cause="16")
    em.hangup(t, x1)
    inner.members -= 1
    em.bridge_ev(t, "BridgeLeave", inner, x2)
    em.var(t, x2, "DIALSTATUS", "ANSWER")
    em.chan_ev(t, "SoftHangupRequest", x2, Cause="16")
    em.hangup(t, x2)
    em.bridge_ev(t, "BridgeDestroy", inner)
    return Leg(target, leg.queue, b1, b2)


def transferred_hangup(call: Call, leg: Leg, br: Bridge, t: float, hold_s: float, connect_t: float) -> None:
    """The second agent (reached by an attended transfer) hangs up: no Agent* event; QUEUESTATUS=CONTINUE."""
    em = call.em
    em.exten(t, leg.a2, "Hangup")
    em.chan_ev(t, "SoftHangupRequest", leg.a2, Cause="16")
    em.chan_ev(t, "HangupRequest", leg.a1, Cause="16")
    em.hangup(t, leg.a2)
    em.var(t, leg.a1, "BRIDGEPEER", "")
    em.var(t, call.c2, "BRIDGEPEER", "")
    br.members = 1
    em.bridge_ev(t, "BridgeLeave", br, leg.a1)
    em.hangup(t, leg.a1)
    br.members = 0
    em.bridge_ev(t, "BridgeLeave", br, call.c2)
    em.bridge_ev(t, "BridgeDestroy", br)
    _stats(call, t, hold_s, t - connect_t)
    em.var(t, call.c2, "QUEUESTATUS", "CONTINUE")
