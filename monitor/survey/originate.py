"""What Asterisk answers to an ``Originate`` with ``Async: true``, read for the callback scheduler.

Two messages, on two paths (Asterisk's ``main/manager.c``):

* the *reply* to the action, at once: ``action_originate`` starts ``fast_originate`` in a thread and sends
  ``Response: Success`` / ``Message: Originate successfully queued`` (``astman_send_ack``), or ``Response: Error``
  (``Permission denied``, ``Invalid channel``...) when nothing was dialled;
* the ``OriginateResponse`` *event*, when the call is decided (answered, or the ``Timeout`` ms of ringing are
  over, busy, ...): ``fast_originate`` sends ``Response: Success|Failure`` and ``Reason: %d``, the ``reason``
  out-parameter of ``ast_pbx_outgoing_exten``: an ``AST_CONTROL_*`` value of ``include/asterisk/frame.h``
  (1 HANGUP, 3 RINGING = still ringing when the timeout hit, 4 ANSWER, 5 BUSY, 8 CONGESTION), 0 when the
  channel could not even be requested. It carries the action's ``ActionID`` and goes to every session with the
  ``call`` read class. Recorded from Asterisk 22 (tests/fixtures/ami22): ``Response: Success`` + ``Reason: 4``
  with the channel's ``Uniqueid``; ``Response: Failure`` + ``Reason: 3`` with ``Uniqueid: <unknown>`` and the
  requested ``Channel`` (e.g. ``Local/5559999@lab-cbphone/n``) 30 s after the dial.

The shutdown fingerprint: ``ast_begin_shutdown`` (``core restart now``) soft-hangs-up every channel with
``AST_SOFTHANGUP_SHUTDOWN`` (``1 << 2``, ``include/asterisk/channel.h``), and ``ast_softhangup`` publishes that
reason as the ``Cause`` of a ``SoftHangupRequest`` event. Recorded (g_restart): ``SoftHangupRequest`` ``Cause: 4``
on the callers' channels, then ``AgentComplete`` ``Reason: caller`` and ordinary ``Hangup`` events: a call cut by
the restart otherwise looks exactly like a caller hanging up on the agent.

What the daemon's wiring gives :class:`~monitor.survey.callback.CallbackScheduler` (reference: ``Wiring`` in
``tests/originate_peer.py``, panoramisk over TCP):

* ``send_action(action: dict) -> Awaitable[Mapping]`` resolving with Asterisk's immediate reply to that action
  only, never waiting for the ``OriginateResponse`` (panoramisk: ``manager.send_action(action, as_list=False)``;
  its default keeps an ``Async`` Originate open until the event and folds both into a list, swallowing the
  event). Raise ``ConnectionError`` only when nothing was written; never re-send an ``Originate`` after a
  reconnect (panoramisk: ``"originate"`` in ``forgetable_actions``, or clear ``awaiting_actions`` on loss);
* every ``OriginateResponse`` and ``SoftHangupRequest`` event, synchronously on the read path, to
  ``scheduler.on_originate_response(headers, now)`` / ``scheduler.on_soft_hangup_request(headers, now)`` with
  ``now`` = the daemon's clock (never the event's ``Timestamp``), from the connection that originates (events
  of other connections are harmless: unknown ActionIDs are ignored);
* each ``CallClosed`` note to ``scheduler.offer(record, now, pbx_now=tracker.pbx_time(now))`` (a shutdown's
  ``SoftHangupRequest`` comes before the ``Hangup`` that closes the call; a job offered anyway is dropped);
* ``SurveyServer(callbacks=scheduler)`` (``claim(token)``) and ``scheduler.run(clock)`` as a named task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: ``Reason`` of ``OriginateResponse`` -> what it means for a callback attempt (AST_CONTROL_* of frame.h).
REASONS: dict[str, str] = {
    "0": "failed", "1": "hung_up", "2": "no_answer", "3": "no_answer", "4": "answered", "5": "busy",
    "8": "congestion",
}
#: ``Cause`` of ``SoftHangupRequest`` when Asterisk hangs every channel up to shut down (AST_SOFTHANGUP_SHUTDOWN).
SOFTHANGUP_SHUTDOWN = "4"
ACTION_PREFIX = "qmon-cb-"


def reason_text(reason: str | None) -> str:
    """``Reason: 3`` -> ``no_answer``; an unknown code -> ``reason_<n>``."""
    code = (reason or "").strip()
    return REASONS.get(code, f"reason_{code or 'missing'}")


def reply_of(result: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The action's own reply out of what ``send_action`` resolved with.

    The wiring should resolve with the reply alone; a client that folds the ``OriginateResponse`` into a list
    (panoramisk without ``as_list=False``) is tolerated: the reply is its first message.
    """
    if isinstance(result, Mapping):
        return result
    return result[0] if result else {}


def header(msg: Mapping[str, Any], name: str) -> str:
    """One header as a string (the first value of a repeated one), case-insensitive, '' when absent."""
    value = msg.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in msg.items() if str(k).lower() == lower), "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def action_id(token: str, dial: int) -> str:
    """The ActionID of a job's ``dial``-th Originate (``qmon-cb-<token>-<n>``, as recorded live)."""
    return f"{ACTION_PREFIX}{token}-{dial}"


def token_of(aid: str) -> str | None:
    """The job token inside one of our ActionIDs, None for anybody else's."""
    if not aid.startswith(ACTION_PREFIX):
        return None
    token, sep, _ = aid[len(ACTION_PREFIX):].rpartition("-")
    return token if sep and token else None
