"""Dialplan after Queue(): the CSAT survey, voicemail fallthrough, overflow into another queue."""

from __future__ import annotations

from monitor.sim.flows import AFTER, ENTRY, MAILBOX, SURVEY, VOICEMAIL, Call

#: Survey answers: a digit 1-5 (OK), another digit (INVALID), nothing (NOINPUT), or the caller hangs up.
SURVEY_KINDS = ("OK", "INVALID", "NOINPUT", "HANGUP")


def _after(call: Call, t: float, status: str) -> None:
    call.em.exten(t, call.c2, "Goto", f"{AFTER},{status},1")
    call.em.goto(call.c2, AFTER, status)


def _caller_gone(call: Call, t: float) -> None:
    call.em.chan_ev(t, "SoftHangupRequest", call.c2, Cause="16")
    call.em.chan_ev(t, "HangupRequest", call.c1, Cause="16")
    call.em.hangup(t, call.c2)
    call.em.hangup(t, call.c1)


def survey(call: Call, t: float, queue: str, agent: str, kind: str, digit: str) -> float:
    """The post-call survey: Playback, Read, UserEvent CSAT (or a hang-up during the prompt); returns end time."""
    em, c2 = call.em, call.c2
    _after(call, t, "CONTINUE")
    em.exten(t, c2, "Goto", f"{SURVEY},s,1")
    em.goto(c2, SURVEY, "s")
    em.exten(t, c2, "NoOp", f"CSAT survey for {queue} agent {agent}")
    em.exten(t, c2, "Playback", "if-correct-press")
    if kind == "HANGUP":
        t += 0.8
        em.chan_ev(t, "HangupRequest", c2, Cause="16")
        em.hangup(t, call.c1)
        em.var(t, c2, "PLAYBACKSTATUS", "SUCCESS")
        em.chan_ev(t, "SoftHangupRequest", c2, Cause="16")
        em.hangup(t, c2)
        return t
    t += 2.0
    em.var(t, c2, "PLAYBACKSTATUS", "SUCCESS")
    em.exten(t, c2, "Read", "CSAT,beep,1,,1,5")
    em.var(t, c2, "READSTATUS", "ERROR")
    if kind == "NOINPUT":
        t += 5.0
        em.var(t, c2, "CSAT", "")
        em.var(t, c2, "READSTATUS", "TIMEOUT")
        em.exten(t, c2, "GotoIf", "1?noinput", priority=4)
        em.exten(t, c2, "Set", "CDR(userfield)=csat=noinput", priority=11)
        score, status = "", "NOINPUT"
    else:
        t += 1.2
        em.chan_ev(t, "DTMFBegin", c2, Digit=digit, Direction="Received")
        t += 0.25
        em.chan_ev(t, "DTMFEnd", c2, Digit=digit, DurationMs="250", Direction="Received")
        em.var(t, c2, "CSAT", digit)
        em.var(t, c2, "READSTATUS", "OK")
        em.exten(t, c2, "GotoIf", "0?noinput")
        valid = kind == "OK"
        em.exten(t, c2, "GotoIf", f"{int(valid)}?valid:invalid")
        em.exten(t, c2, "Set", f"CDR(userfield)=csat={digit if valid else 'invalid:' + digit}",
                 priority=None if valid else 9)
        score, status = digit, kind
    data = f"CSAT,Queue: {queue},Score: {score},Status: {status},Agent: {agent},QueueUniqueid: {c2.uid}"
    em.exten(t, c2, "UserEvent", data)
    em.chan_ev(t, "UserEvent", c2, UserEvent="CSAT", Queue=queue, Score=score, Status=status, Agent=agent,
               QueueUniqueid=c2.uid)
    if kind != "NOINPUT":
        em.exten(t, c2, "Playback", "auth-thankyou")
        t += 1.0
        em.var(t, c2, "PLAYBACKSTATUS", "SUCCESS")
    em.exten(t, c2, "Hangup")
    _caller_gone(call, t)
    return t


#: A caller who hangs up this soon (s) after VoiceMail starts has left no message (still in the greeting).
GREETING_S = 8.0


def voicemail(call: Call, t: float, status: str, queue: str, message_s: float) -> float:
    """Unanswered: dialplan sends the caller to VoiceMail; the message is saved when they hang up.

    ``status`` is QUEUESTATUS (TIMEOUT, JOINEMPTY, LEAVEEMPTY), or "" after an exit key (the channel is already
    in the exit context, which goes to voicemail itself). A hang-up within :data:`GREETING_S` saves nothing:
    ``VMSTATUS=FAILED`` a few seconds later, no MessageWaiting (transcripts ``exit_empty``, ``exit_key``).
    """
    em, c2 = call.em, call.c2
    if status:
        _after(call, t, status)
    if status == "TIMEOUT":
        em.exten(t, c2, "GotoIf", f"0?{ENTRY},,1")
    em.exten(t, c2, "Goto", f"{VOICEMAIL},s,1")
    em.goto(c2, VOICEMAIL, "s")
    em.exten(t, c2, "NoOp", f"voicemail fallthrough from {queue} ({status})")
    em.exten(t, c2, "VoiceMail", f"{MAILBOX},u")
    t += message_s
    em.chan_ev(t, "HangupRequest", c2, Cause="16")
    em.hangup(t, call.c1)
    if message_s < GREETING_S:
        t += 4.0  # recorded: VoiceMail notices the hang-up some seconds later
        em.var(t, c2, "VMSTATUS", "FAILED")
        em.chan_ev(t, "SoftHangupRequest", c2, Cause="16")
        em.hangup(t, c2)
        return t
    em.var(t, c2, "VM_MESSAGEFILE", "")
    em.events[-1][1]["_vm"] = "file"
    em.chan_ev(t, "MessageWaiting", c2, Mailbox=MAILBOX, Waiting="1", New="", Old="0", _vm="count")
    em.var(t, c2, "VMSTATUS", "SUCCESS")
    em.chan_ev(t, "SoftHangupRequest", c2, Cause="16")
    em.hangup(t, c2)
    return t


def overflow(call: Call, t: float, queue: str) -> None:
    """After a timeout the dialplan sends the same channel into another queue (same Uniqueid)."""
    em, c2 = call.em, call.c2
    _after(call, t, "TIMEOUT")
    em.exten(t, c2, "GotoIf", f"1?{ENTRY},{queue},1")
    em.goto(c2, ENTRY, queue)
    em.exten(t, c2, "NoOp", f"Inbound call for {queue}")
    em.exten(t, c2, "Set", f"DEMO_QUEUE={queue}")
    em.exten(t, c2, "Answer")


# -- the survey over FastAGI (qmon's own dialplan), as recorded beside a real Asterisk 22 -------------------
# live-asterisk-22/ami/a_csat4.qmon.ami: QUEUESTATUS=CONTINUE, GotoIf, Set(TIMEOUT(absolute)), AGI(); one VarSet
# per SET VARIABLE qmon sends (PLAYBACKSTATUS after a STREAM FILE), AGISTATUS, GotoIf, Hangup.
# b_hangup_during_prompt.qmon.ami: the caller's hang-up (HangupRequest, Hangup ;1) comes while AGI() runs, then
# AGISTATUS=HANGUP and the queue channel's Hangup.

#: TIMEOUT(absolute) the shipped dialplan sets around AGI() (asterisk/extensions_qmon.conf, QMON_SURVEY_TIMEOUT).
SURVEY_TIMEOUT_S = 53


def agi_start(call: Call, t: float, queue: str, url: str) -> None:
    """The agent hung up (QUEUESTATUS=CONTINUE): the dialplan runs ``AGI(<url>/csat,<linkedid>,<queue>,en)``."""
    em, c2 = call.em, call.c2
    em.exten(t, c2, "GotoIf", "1?survey")
    em.exten(t, c2, "Set", f"TIMEOUT(absolute)={SURVEY_TIMEOUT_S}", priority=c2.priority + 2)
    em.exten(t, c2, "AGI", f"{url}/csat,{call.c1.uid},{queue},en")


def agi_var(call: Call, t: float, name: str, value: str) -> None:
    """A SET VARIABLE qmon sent (a dialplan function such as ``CDR(userfield)`` makes no VarSet)."""
    if "(" not in name:
        call.em.var(t, call.c2, name, value)


def agi_caller_gone(call: Call, t: float) -> None:
    """The caller hangs up while AGI() runs: HangupRequest of the queue channel, Hangup of the phone."""
    call.em.chan_ev(t, "HangupRequest", call.c2, Cause="16")
    call.em.hangup(t, call.c1)


def agi_end(call: Call, t: float, agistatus: str) -> None:
    """AGI() returned: AGISTATUS; the caller hung up already (HANGUP), or the dialplan ends the call."""
    em, c2 = call.em, call.c2
    em.var(t, c2, "AGISTATUS", agistatus)
    if agistatus == "HANGUP":
        em.chan_ev(t, "SoftHangupRequest", c2, Cause="16")
        em.hangup(t, c2)
        return
    em.exten(t, c2, "GotoIf", f"{int(agistatus == 'SUCCESS')}?done")
    if agistatus != "SUCCESS":  # qmon unreachable: the dialplan says goodbye itself
        em.exten(t, c2, "Playback", "qmon/en/goodbye")
        t += 1.5
        em.var(t, c2, "PLAYBACKSTATUS", "SUCCESS")
    em.exten(t, c2, "Hangup", priority=c2.priority + (0 if agistatus != "SUCCESS" else 1))
    _caller_gone(call, t)
