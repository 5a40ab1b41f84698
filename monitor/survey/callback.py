"""Callback surveys (opt-in): call back callers who hung up on the agent, over AMI ``Originate``.

A job's life, every time on the daemon's clock passed in by the caller (PBX time only ages the call in
:meth:`CallbackScheduler.offer`, never compared with ours):

* offered: a closed call whose caller hung up on the agent after more than 0 s of talk, seen to its hang-up
  (``closed_by`` hangup) and not cut by an Asterisk shutdown (``SoftHangupRequest`` ``Cause: 4``, see
  :mod:`monitor.survey.originate`); one job per call and per number;
* due after ``delay_s``: :meth:`~CallbackScheduler.tick` sends ``Originate`` with ``Async: true`` and
  ``Timeout`` = ``answer_timeout_s`` through the injected ``send_action``, which resolves with Asterisk's
  immediate reply only (``Originate successfully queued``);
* the attempt stays *in flight* until Asterisk's ``OriginateResponse`` with its ActionID arrives
  (:meth:`~CallbackScheduler.on_originate_response`: ``Reason`` 4 answered, 3 no answer, 5 busy, 8 congestion,
  0 failed), or the survey channel claims the token (:meth:`~CallbackScheduler.claim`), or
  ``answer_timeout_s + grace_s`` passed: Asterisk rings for that same ``answer_timeout_s``, so by then it has
  stopped. Only then may a retry be scheduled: never two attempts in flight for one number;
* the job ends once: claimed (the survey server records the survey), or given up / dropped (recorded here as
  ``unreachable`` / ``not_eligible``). A claim arriving after the end gets a *decline* target: the callee hears
  goodbye and nothing is recorded a second time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.core.records import CallRecord
from monitor.core.survey import CooldownState, OptOutList, SurveyPolicy, SurveyResultRecord, in_quiet_hours
from monitor.core.vocab import SurveyStatus
from monitor.survey import originate as orig
from monitor.survey.collaborators import CallbackTarget, ResultSink

log = logging.getLogger("qmon.survey.callback")

#: Writes one AMI action and resolves with Asterisk's immediate reply to it (never the OriginateResponse event);
#: raises ConnectionError only when nothing was written.
SendAction = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any] | Sequence[Mapping[str, Any]]]]
_REMEMBER = 10_000  # ended jobs kept so a late claim is declined, shutdown-cut Linkedids kept


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    """Where and how callbacks are dialled (times in s)."""

    channel: str  # e.g. "PJSIP/{number}@trunk"; {number} is the caller's number
    context: str = "qmon-survey-callback"
    exten: str = "s"
    priority: int = 1
    caller_id: str = ""
    delay_s: float = 60.0
    retry_delay_s: float = 300.0
    max_attempts: int = 2
    rate_per_min: int = 10
    # The one ring limit: the Originate's Timeout (ms) and how long qmon holds the attempt in flight (+ grace_s).
    answer_timeout_s: float = 30.0
    # Slack for Asterisk's OriginateResponse after the ring limit, and for the survey channel's FastAGI
    # connection after an answer (recorded: 1.4 ms after the event).
    grace_s: float = 15.0
    ack_timeout_s: float = 5.0  # Asterisk's "successfully queued" is immediate; a missing one ends nothing
    max_age_s: float = 86_400.0  # a survey about a call older than this is pointless


@dataclass(slots=True)
class Attempt:
    """One Originate in flight."""

    number: int  # the job's dial count (ActionID suffix)
    action_id: str
    sent_at: float
    ends_at: float  # give it up when nothing decided it by then
    acked: bool = False
    answered: bool = False


@dataclass
class CallbackJob:
    """One caller to call back."""

    token: str
    record: CallRecord
    caller: str
    queue: str | None
    agent: str | None
    language: str | None
    due: float
    expires_at: float = float("inf")  # daemon clock: after this the survey is pointless
    attempts: int = 0  # attempts that may have rung (counted against max_attempts)
    dials: int = 0  # Originates written, counted or not (ActionID numbering)
    attempt: Attempt | None = None
    last_error: str = ""
    ended: str = ""  # how the job ended: claimed, unreachable, not_eligible
    history: list[str] = field(default_factory=list)


class CallbackScheduler:
    """Keeps callback jobs and originates them when due (implements the server's CallbackClaims)."""

    def __init__(
        self, config: CallbackConfig, policy: SurveyPolicy, send_action: SendAction, on_result: ResultSink, *,
        cooldown: CooldownState | None = None, optout: OptOutList | None = None,
        local_dt: Callable[[float], datetime] = datetime.fromtimestamp,
    ) -> None:
        self.config = config
        self.policy = policy
        self.send_action = send_action
        self.on_result = on_result
        self.cooldown = cooldown
        self.optout = optout
        self.local_dt = local_dt
        self.jobs: dict[str, CallbackJob] = {}
        self._by_action: dict[str, str] = {}  # ActionID of an attempt in flight -> token
        self._ended: OrderedDict[str, CallbackJob] = OrderedDict()
        self._shutdown_cut: OrderedDict[str, float] = OrderedDict()  # Linkedid -> when Asterisk shut it down
        self._sent: deque[float] = deque()  # originate times within the last minute (rate limit)
        self.stats: dict[str, int] = {
            "offered": 0, "not_offered": 0, "originated": 0, "answered": 0, "failed": 0, "claimed": 0,
            "late_claims": 0, "declined": 0, "unreachable": 0, "dropped": 0, "stray_events": 0,
        }

    # -- inputs ----------------------------------------------------------------------------------------

    def offer(self, record: CallRecord, now: float, language: str | None = None,
              pbx_now: float | None = None) -> str | None:
        """Consider a closed call; returns the job token if a callback is scheduled.

        ``now`` is the daemon's clock (s); ``pbx_now`` the PBX's clock at the same moment (s, e.g. the tracker's
        last event time), used only to age ``record.end_ts`` — PBX time is never compared with the daemon clock.
        """
        why = self._refusal(record)
        if why is not None:
            self.stats["not_offered"] += 1
            log.debug("no survey callback for %s: %s", record.linkedid, why)
            return None
        caller = record.caller
        assert caller is not None  # _refusal checked it
        last = self.cooldown.last_surveyed(caller) if self.cooldown else None
        opted = bool(self.optout and self.optout.is_opted_out(caller))
        d = self.policy.decide(record, caller, now, self.local_dt(now).time(), last, opted)
        # quiet_hours is the policy's last check: the call is otherwise eligible, so postpone, do not drop.
        if not d.eligible and d.reason != "quiet_hours":
            return None
        token = secrets.token_hex(8)
        age = max(0.0, pbx_now - record.end_ts) if pbx_now is not None else 0.0
        self.jobs[token] = CallbackJob(token, record, caller, d.queue, d.agent, language,
                                       now + self.config.delay_s, expires_at=now + self.config.max_age_s - age)
        self.stats["offered"] += 1
        return token

    def on_soft_hangup_request(self, headers: Mapping[str, Any], now: float) -> None:
        """Route AMI ``SoftHangupRequest`` events here: ``Cause: 4`` marks the call as cut by a shutdown."""
        if orig.header(headers, "Cause").strip() != orig.SOFTHANGUP_SHUTDOWN:
            return
        lid = orig.header(headers, "Linkedid")
        if not lid or lid in self._shutdown_cut:
            return
        self._shutdown_cut[lid] = now
        while len(self._shutdown_cut) > _REMEMBER:
            self._shutdown_cut.popitem(last=False)
        for job in list(self.jobs.values()):  # offered before the shutdown showed (events out of order)
            if job.record.linkedid == lid and job.attempt is None:
                self._end(job, now, SurveyStatus.NOT_ELIGIBLE, "pbx_shutdown")

    def on_originate_response(self, headers: Mapping[str, Any], now: float) -> None:
        """Route every AMI ``OriginateResponse`` event here; ours are matched to their attempt by ActionID."""
        aid = orig.header(headers, "ActionID")
        token = self._by_action.get(aid)
        job = self.jobs.get(token) if token else None
        att = job.attempt if job else None
        if job is None or att is None or att.action_id != aid:
            self._stray(aid, headers)
            return
        response = orig.header(headers, "Response").lower()
        outcome = orig.reason_text(orig.header(headers, "Reason"))
        job.history.append(f"{aid}: {response or '?'} {outcome}")
        if response == "success":
            # Answered: the survey channel is about to connect with the token; it has grace_s to do so.
            att.answered = True
            att.ends_at = now + self.config.grace_s
            self.stats["answered"] += 1
            return
        self._attempt_over(job, now, f"originate {outcome}")

    def claim(self, token: str) -> CallbackTarget | None:
        """The survey channel connected to the FastAGI server with ``token``: the call to survey, once.

        A job already ended (given up, dropped, claimed) gets a target with ``decline`` set: the callee hears
        goodbye and nothing is recorded; an unknown token gets None.
        """
        job = self.jobs.get(token)
        if job is not None:
            if job.attempt is None:  # its last attempt was given up for lack of news: answered after all
                self.stats["late_claims"] += 1
                log.info("survey callback %s answered after attempt %d was given up: surveying now",
                         token, job.attempts)
            self.stats["claimed"] += 1
            self._end(job, None, None)
            return CallbackTarget(job.record, job.caller, job.language)
        ended = self._ended.get(token)
        if ended is None:
            return None
        self.stats["declined"] += 1
        log.warning("survey callback %s answered after the job ended (%s): goodbye, no second record",
                    token, ended.ended)
        return CallbackTarget(ended.record, ended.caller, ended.language, decline=ended.ended)

    # -- the loop --------------------------------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """Give up attempts past their end, then originate every job due at ``now`` (s, daemon clock)."""
        for job in sorted(self.jobs.values(), key=lambda j: j.due):
            if job.token not in self.jobs:  # ended while we awaited an earlier Originate's reply
                continue
            att = job.attempt
            if att is not None:
                if now >= att.ends_at:
                    if att.answered:
                        self._end(job, now, SurveyStatus.UNREACHABLE, "answered; survey never connected")
                    else:
                        self._attempt_over(job, now, "no OriginateResponse in time")
                continue
            if job.due > now:
                continue
            if not self._may_dial(job, now):
                continue
            self._sent.append(now)
            await self._originate(job, now)

    async def run(self, clock: Callable[[], float] = time.time, interval_s: float = 1.0) -> None:
        """Tick forever on ``clock`` (the daemon's); cancel to stop."""
        while True:
            try:
                await self.tick(clock())
            except Exception:  # keep calling back even if one tick hit a bug
                log.exception("callback tick failed")
            await asyncio.sleep(interval_s)

    def action(self, job: CallbackJob) -> dict[str, Any]:
        """The AMI ``Originate`` action for a job's next dial."""
        c = self.config
        variables = [f"QMON_SURVEY_TOKEN={job.token}", f"QMON_QUEUE={job.queue or ''}"]
        if job.language:
            variables.append(f"QMON_LANG={job.language}")
        act: dict[str, Any] = {
            "Action": "Originate", "ActionID": orig.action_id(job.token, job.dials + 1),
            "Channel": c.channel.format(number=job.caller), "Context": c.context, "Exten": c.exten,
            "Priority": str(c.priority), "Timeout": str(int(c.answer_timeout_s * 1000)), "Async": "true",
            "Variable": variables,
        }
        if c.caller_id:
            act["CallerID"] = c.caller_id
        return act

    def in_flight(self) -> list[str]:
        """ActionIDs of the attempts in flight."""
        return sorted(self._by_action)

    # -- internals -------------------------------------------------------------------------------------

    def _refusal(self, record: CallRecord) -> str | None:
        """Why a closed call gets no callback, None if it may."""
        answered = [s for s in record.segments if s.outcome == "answered" and s.agent]
        if record.survey is not None:
            return "surveyed"
        if not answered:
            return "not_answered"
        if answered[-1].completion != "caller":  # the agent hung up: the inline survey ran
            return "agent_hung_up"
        if not answered[-1].talk_s or answered[-1].talk_s <= 0:
            return "no_talk"
        if record.closed_by != "hangup":  # gap, eof, shutdown, stale: not seen to its end
            return f"closed_by_{record.closed_by}"
        if record.linkedid in self._shutdown_cut:
            return "pbx_shutdown"
        if record.caller is None:
            return "no_caller"
        if any(j.record.linkedid == record.linkedid or j.caller == record.caller for j in self.jobs.values()):
            return "already_scheduled"
        return None

    def _may_dial(self, job: CallbackJob, now: float) -> bool:
        """The checks right before dialling; False when the job was dropped or postponed."""
        if now > job.expires_at:
            self._end(job, now, SurveyStatus.NOT_ELIGIBLE, "expired")
            return False
        if self.optout and self.optout.is_opted_out(job.caller):
            self._end(job, now, SurveyStatus.NOT_ELIGIBLE, "opted_out")
            return False
        last = self.cooldown.last_surveyed(job.caller) if self.cooldown else None
        if last is not None and now - last < self.policy.config.cooldown_days * 86400:
            self._end(job, now, SurveyStatus.NOT_ELIGIBLE, "cooldown")
            return False
        if in_quiet_hours(self.policy.config.quiet_hours, self.local_dt(now).time()):
            job.due = self._quiet_end(now)
            return False
        if any(j.attempt is not None and j.caller == job.caller for j in self.jobs.values()):
            job.due = now + self.config.retry_delay_s  # offer() keeps one job per number; belt and braces
            return False
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.config.rate_per_min:
            job.due = self._sent[0] + 60.0
            return False
        return True

    async def _originate(self, job: CallbackJob, now: float) -> None:
        c = self.config
        act = self.action(job)
        job.dials += 1
        job.attempts += 1
        # In flight before the write: the OriginateResponse may overtake the reply we await.
        att = job.attempt = Attempt(job.dials, act["ActionID"], now, now + c.answer_timeout_s + c.grace_s)
        self._by_action[att.action_id] = job.token
        self.stats["originated"] += 1
        try:
            reply = orig.reply_of(await asyncio.wait_for(self.send_action(act), c.ack_timeout_s))
        except ConnectionError as exc:  # nothing was written, nothing rings: not an attempt
            job.attempts -= 1
            self._attempt_over(job, now, f"AMI not connected: {exc}")
            return
        except Exception as exc:  # written, fate unknown: Asterisk may be dialling, so wait the attempt out
            log.warning("survey callback %s: no reply to Originate (%s: %s); holding the attempt until %s s",
                        att.action_id, type(exc).__name__, exc, c.answer_timeout_s + c.grace_s)
            return
        if job.attempt is not att:  # decided meanwhile (the event overtook the reply)
            return
        if orig.header(reply, "Response").lower() == "success":
            att.acked = True
        else:  # Asterisk refused it (e.g. Permission denied): nothing was dialled
            self._attempt_over(job, now, f"Originate refused: {orig.header(reply, 'Message') or 'error'}")

    def _attempt_over(self, job: CallbackJob, now: float, error: str) -> None:
        """The attempt in flight ended without a survey: retry after ``retry_delay_s`` or give the job up."""
        if job.attempt is not None:
            self._by_action.pop(job.attempt.action_id, None)
            job.attempt = None
        self.stats["failed"] += 1
        job.last_error = error
        job.history.append(error)
        log.info("survey callback %s attempt %d/%d failed: %s", job.token, job.attempts, self.config.max_attempts,
                 error)
        if job.attempts >= self.config.max_attempts:
            self._end(job, now, SurveyStatus.UNREACHABLE, error)
        else:
            job.due = now + self.config.retry_delay_s

    def _end(self, job: CallbackJob, now: float | None, status: str | None, reason: str = "") -> None:
        """End a job once: ``status`` None = claimed (the survey server records it), else recorded here."""
        if job.token not in self.jobs:
            return
        del self.jobs[job.token]
        if job.attempt is not None:
            self._by_action.pop(job.attempt.action_id, None)
            job.attempt = None
        job.ended = "claimed" if status is None else str(status)
        self._ended[job.token] = job
        while len(self._ended) > _REMEMBER:
            self._ended.popitem(last=False)
        if status is None or now is None:
            return
        self.stats["unreachable" if status == SurveyStatus.UNREACHABLE else "dropped"] += 1
        rec = SurveyResultRecord(
            job.record.linkedid, job.record.call_id, job.caller, job.queue, job.agent, str(status), None, None,
            None, "", job.language or self.policy.config.default_language, "callback", now, now, reason)
        try:
            self.on_result(rec)
        except Exception:
            log.exception("survey result sink failed")

    def _stray(self, aid: str, headers: Mapping[str, Any]) -> None:
        token = orig.token_of(aid)
        if token is None:
            return  # somebody else's Originate
        self.stats["stray_events"] += 1
        ended = self._ended.get(token)
        level = logging.DEBUG if ended is not None and ended.ended == "claimed" else logging.INFO
        log.log(level, "OriginateResponse %s (%s, %s) after its attempt ended", aid,
                orig.header(headers, "Response"), orig.reason_text(orig.header(headers, "Reason")))

    def _quiet_end(self, now: float) -> float:
        window = self.policy.config.quiet_hours
        assert window is not None  # only called inside quiet hours
        dt = self.local_dt(now)
        end = dt.replace(hour=window[1].hour, minute=window[1].minute, second=0, microsecond=0)
        if end <= dt:
            end += timedelta(days=1)
        return now + (end - dt).total_seconds()
