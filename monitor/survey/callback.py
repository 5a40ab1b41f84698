"""Callback surveys (opt-in): call back callers who hung up before the survey could start.

Offered a closed call (the tracker's ``CallClosed``), the scheduler keeps a job; :meth:`tick` (time passed
in) originates due jobs over AMI through an injected ``async send_action(dict) -> dict``, respecting quiet
hours (postponed, not dropped), the opt-out list, the cooldown, a per-minute rate limit and a maximum number
of attempts. ``Async: true`` keeps Asterisk's manager thread free; the attempt fails on ``Response: Error``,
on an ``OriginateResponse`` failure event (:meth:`on_originate_response`) or when the survey's FastAGI
connection never arrives in time. A job that fails every attempt is recorded as ``unreachable``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.core.records import CallRecord
from monitor.core.survey import CooldownState, OptOutList, SurveyPolicy, SurveyResultRecord, in_quiet_hours
from monitor.survey.server import CallbackTarget, ResultSink

log = logging.getLogger("qmon.survey.callback")

SendAction = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    """Where and how callbacks are dialled."""

    channel: str  # e.g. "PJSIP/{number}@trunk"; {number} is the caller's number
    context: str = "qmon-survey-callback"
    exten: str = "s"
    priority: int = 1
    caller_id: str = ""
    delay_s: float = 60.0
    retry_delay_s: float = 300.0
    max_attempts: int = 2
    rate_per_min: int = 10
    answer_timeout_s: float = 30.0
    connect_grace_s: float = 15.0  # after the answer timeout, how long we wait for the AGI connection
    max_age_s: float = 86_400.0  # a survey about a call older than this is pointless
    action_timeout_s: float = 10.0


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
    attempts: int = 0
    dialing_until: float | None = None
    action_id: str = ""
    last_error: str = ""


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
        self._sent: deque[float] = deque()  # originate times within the last minute (rate limit)
        self.stats: dict[str, int] = {"offered": 0, "originated": 0, "failed": 0, "claimed": 0, "dropped": 0}

    # -- inputs ----------------------------------------------------------------------------------------

    def offer(self, record: CallRecord, now: float, language: str | None = None,
              pbx_now: float | None = None) -> str | None:
        """Consider a closed call; returns the job token if a callback is scheduled.

        ``now`` is the daemon's clock (s); ``pbx_now`` the PBX's clock at the same moment (s, e.g. the tracker's
        last event time), used only to age ``record.end_ts`` — PBX time is never compared with the daemon clock.
        """
        answered = [s for s in record.segments if s.outcome == "answered" and s.agent]
        # Only callers who hung up on the agent: when the agent hung up, the inline survey ran.
        if not answered or answered[-1].completion != "caller" or record.survey is not None:
            return None
        if record.caller is None or any(j.record.linkedid == record.linkedid for j in self.jobs.values()):
            return None
        caller = record.caller
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

    def claim(self, token: str) -> CallbackTarget | None:
        """The survey channel connected to the FastAGI server: hand over the call, once."""
        job = self.jobs.pop(token, None)
        if job is None:
            return None
        self.stats["claimed"] += 1
        return CallbackTarget(job.record, job.caller, job.language)

    def on_originate_response(self, headers: Mapping[str, str], now: float) -> None:
        """Route AMI ``OriginateResponse`` events here; a failure ends the attempt at once."""
        aid = headers.get("ActionID", "")
        if not aid.startswith("qmon-cb-") or headers.get("Response", "").lower() == "success":
            return
        for job in list(self.jobs.values()):
            if job.action_id == aid and job.dialing_until is not None:
                self._failed(job, now, f"originate {headers.get('Reason', 'failed')}")

    # -- the loop --------------------------------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """Handle every job due at ``now`` (originate, postpone, give up)."""
        for job in sorted(self.jobs.values(), key=lambda j: j.due):
            if job.due > now or job.token not in self.jobs:
                continue
            if job.dialing_until is not None:
                self._failed(job, now, "survey never connected")
                continue
            if now > job.expires_at:
                self._drop(job, now, "expired")
                continue
            if self.optout and self.optout.is_opted_out(job.caller):
                self._drop(job, now, "opted_out")
                continue
            last = self.cooldown.last_surveyed(job.caller) if self.cooldown else None
            if last is not None and now - last < self.policy.config.cooldown_days * 86400:
                self._drop(job, now, "cooldown")
                continue
            if in_quiet_hours(self.policy.config.quiet_hours, self.local_dt(now).time()):
                job.due = self._quiet_end(now)
                continue
            while self._sent and now - self._sent[0] >= 60.0:
                self._sent.popleft()
            if len(self._sent) >= self.config.rate_per_min:
                job.due = self._sent[0] + 60.0
                continue
            self._sent.append(now)
            await self._originate(job, now)

    async def run(self, clock: Callable[[], float] = time.time, interval_s: float = 1.0) -> None:
        """Tick forever (cancel to stop)."""
        while True:
            try:
                await self.tick(clock())
            except Exception:  # keep calling back even if one tick hit a bug
                log.exception("callback tick failed")
            await asyncio.sleep(interval_s)

    def action(self, job: CallbackJob) -> dict[str, Any]:
        """The AMI ``Originate`` action for a job's next attempt."""
        c = self.config
        variables = [f"QMON_SURVEY_TOKEN={job.token}", f"QMON_QUEUE={job.queue or ''}"]
        if job.language:
            variables.append(f"QMON_LANG={job.language}")
        act: dict[str, Any] = {
            "Action": "Originate", "ActionID": f"qmon-cb-{job.token}-{job.attempts}",
            "Channel": c.channel.format(number=job.caller), "Context": c.context, "Exten": c.exten,
            "Priority": str(c.priority), "Timeout": str(int(c.answer_timeout_s * 1000)), "Async": "true",
            "Variable": variables,
        }
        if c.caller_id:
            act["CallerID"] = c.caller_id
        return act

    # -- internals -------------------------------------------------------------------------------------

    async def _originate(self, job: CallbackJob, now: float) -> None:
        job.attempts += 1
        act = self.action(job)
        job.action_id = act["ActionID"]
        try:
            resp = await asyncio.wait_for(self.send_action(act), self.config.action_timeout_s)
            ok = str(resp.get("Response", "")).lower() == "success"
            err = str(resp.get("Message", "error"))
        except Exception as exc:  # AMI down or slow: an attempt lost, not the job
            ok, err = False, f"{type(exc).__name__}: {exc}"
        self.stats["originated"] += 1
        if ok:
            job.dialing_until = now + self.config.answer_timeout_s + self.config.connect_grace_s
            job.due = job.dialing_until
        else:
            self._failed(job, now, err)

    def _failed(self, job: CallbackJob, now: float, error: str) -> None:
        self.stats["failed"] += 1
        job.last_error = error
        job.dialing_until = None
        log.info("survey callback attempt %d/%d failed: %s", job.attempts, self.config.max_attempts, error)
        if job.attempts >= self.config.max_attempts:
            self.jobs.pop(job.token, None)
            self._emit(job, now, "unreachable", error)
        else:
            job.due = now + self.config.retry_delay_s

    def _drop(self, job: CallbackJob, now: float, reason: str) -> None:
        self.stats["dropped"] += 1
        self.jobs.pop(job.token, None)
        self._emit(job, now, "not_eligible", reason)

    def _emit(self, job: CallbackJob, now: float, status: str, reason: str) -> None:
        rec = SurveyResultRecord(
            job.record.linkedid, job.record.call_id, job.caller, job.queue, job.agent, status, None, None,
            None, "", job.language or self.policy.config.default_language, "callback", now, now, reason)
        try:
            self.on_result(rec)
        except Exception:
            log.exception("survey result sink failed")

    def _quiet_end(self, now: float) -> float:
        window = self.policy.config.quiet_hours
        assert window is not None  # only called inside quiet hours
        dt = self.local_dt(now)
        end = dt.replace(hour=window[1].hour, minute=window[1].minute, second=0, microsecond=0)
        if end <= dt:
            end += timedelta(days=1)
        return now + (end - dt).total_seconds()
