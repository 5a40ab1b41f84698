"""The survey parts of the daemon: FastAGI server, result fan-out (store, metrics, webhook), callbacks.

Kept beside ``monitor/app.py`` (which owns the lifecycle and calls :func:`build_survey`) so both stay small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.core.records import CallClosed, CallRecord, Note, Survey
from monitor.core.survey import SurveyPolicy, SurveyResultRecord
from monitor.core.tracker import CallTracker
from monitor.survey.callback import CallbackScheduler
from monitor.survey.config import callback_config, policy_config
from monitor.survey.results import ResultFanout, Webhook
from monitor.survey.server import SurveyServer
from monitor.survey.state import SurveyState

if TYPE_CHECKING:
    from monitor.app import Daemon

log = logging.getLogger("qmon.survey")


@dataclass
class SurveyParts:
    """What the daemon runs for surveys."""

    server: SurveyServer
    state: SurveyState
    webhook: Webhook | None = None
    callbacks: CallbackScheduler | None = None
    clock: Callable[[], float] = time.time
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_tasks(self, tg: asyncio.TaskGroup) -> None:
        """The webhook sender and the callback loop, as named tasks of the daemon's TaskGroup."""
        if self.webhook is not None:
            self.tasks.append(tg.create_task(self.webhook.run(), name="survey-webhook"))
        if self.callbacks is not None:
            self.tasks.append(tg.create_task(self.callbacks.run(self.clock), name="survey-callbacks"))

    async def close(self) -> None:
        """Stop listening, deliver pending webhooks (bounded), stop the loops."""
        with contextlib.suppress(Exception):
            await self.server.close(5.0)
        if self.webhook is not None:
            await self.webhook.drain(5.0)
        for t in self.tasks:
            t.cancel()
        self.state.close()


def build_survey(d: Daemon) -> SurveyParts | None:
    """The survey server wired to the trackers, the store, the metrics, the webhook and callbacks."""
    s = d.settings.survey
    if not s.enabled:
        return None
    default_pbx = next(iter(d.pbxs), "default")
    recent_pbx: OrderedDict[str, str] = OrderedDict()  # linkedid / call id -> pbx of recently closed calls

    def pbx_of(rec: SurveyResultRecord) -> str:
        for key in (rec.linkedid, rec.uniqueid):
            if not key:
                continue
            for name, p in d.pbxs.items():
                if p.tracker.find_call(key) is not None:
                    return name
            if key in recent_pbx:
                return recent_pbx[key]
        return default_pbx

    def lookup(uniqueid: str | None, linkedid: str | None) -> CallRecord | None:
        for p in d.pbxs.values():
            for key in (linkedid, uniqueid):
                if key and (rec := p.tracker.find_call(key)) is not None:
                    return rec
        return None

    def attach(key: str, survey: Survey) -> list[Note]:
        # The answer belongs to whichever PBX tracks the call; that ingest feeds metrics and the store.
        for p in d.pbxs.values():
            notes = p.tracker.add_survey(key, survey)
            if notes:
                p.ingest.emit(notes)
                return notes
        return []

    def remember_pbx(notes: list[Note]) -> None:
        for n in notes:
            if isinstance(n, CallClosed):
                recent_pbx[n.record.linkedid] = recent_pbx[n.record.call_id] = n.record.pbx
                while len(recent_pbx) > 20_000:
                    recent_pbx.popitem(last=False)

    for p in d.pbxs.values():
        p.ingest.sinks.append(remember_pbx)
    policy = SurveyPolicy(policy_config(s))
    state = SurveyState(s.state_path)
    webhook = Webhook(s.webhook_url, s.webhook_max_score, retries=s.webhook_retries) if s.webhook_url else None
    sinks: list[Callable[[SurveyResultRecord], None]] = [
        lambda rec: d.store.submit_survey(rec, pbx_of(rec)),
        lambda rec: d.metrics.survey_result(pbx_of(rec), rec),
    ]
    fanout = ResultFanout(attach=attach, sinks=sinks, webhook=webhook)
    callbacks = None
    if s.callback_enabled and d.sources:
        name, source = next(iter(d.sources.items()))  # callbacks originate through the first [[ami]] connection

        def send(action: dict[str, Any]) -> Coroutine[Any, Any, Any]:
            return source.send_action(action)

        callbacks = CallbackScheduler(callback_config(s), policy, send, fanout, cooldown=state, optout=state)
        source.on_event("OriginateResponse", lambda h: callbacks.on_originate_response(
            {k: v if isinstance(v, str) else v[0] for k, v in h.items()}, d.clock()) if callbacks else None)

        def offer_from(tracker: CallTracker) -> Callable[[list[Note]], None]:
            def offer(notes: list[Note]) -> None:
                for n in notes:
                    if isinstance(n, CallClosed) and callbacks is not None:
                        # The call's age is measured on the PBX clock (its last event), its expiry on ours.
                        now = d.clock()
                        callbacks.offer(n.record, now, pbx_now=tracker.pbx_time(now))
            return offer

        for p in d.pbxs.values():
            p.ingest.sinks.append(offer_from(p.tracker))
        log.info("survey callbacks enabled through AMI %s", name)
    server = SurveyServer(policy, lookup=lookup, on_result=fanout, cooldown=state, optout=state,
                          callbacks=callbacks, bind=s.bind, port=s.port, header_timeout_s=s.header_timeout_s,
                          max_header_bytes=s.max_header_bytes, clock=d.clock)
    return SurveyParts(server, state, webhook, callbacks, clock=d.clock)
