"""Where survey results go: the call record (tracker), sinks (storage, metrics) and the low-score webhook."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import aiohttp

from monitor.core.records import Note, Survey
from monitor.core.survey import SurveyResultRecord

log = logging.getLogger("qmon.survey.results")

AttachFn = Callable[[str, Survey], list[Note]]


def result_row(rec: SurveyResultRecord) -> dict[str, Any]:
    """A JSON-ready dict of one result (the API and webhook shape)."""
    return asdict(rec)


class Webhook:
    """POSTs low scores as JSON, with retries, from its own task (submit never blocks)."""

    def __init__(
        self, url: str, max_score: int = 2, *, retries: int = 3, backoff_s: float = 1.0, timeout_s: float = 5.0,
        queue_size: int = 1000, headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.max_score = max_score
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.headers = headers or {}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self.stats: dict[str, int] = {"sent": 0, "failed": 0, "dropped": 0, "retries": 0}

    def wants(self, rec: SurveyResultRecord) -> bool:
        """Whether this result is a low score worth a webhook."""
        return rec.csat is not None and rec.csat <= self.max_score

    def submit(self, rec: SurveyResultRecord) -> bool:
        """Queue a result for delivery if it is a low score; False if not wanted or the queue is full."""
        if not self.wants(rec):
            return False
        try:
            self._queue.put_nowait({"event": "survey.low_score", "survey": result_row(rec)})
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            log.warning("survey webhook queue full: one low-score notification dropped")
            return False
        return True

    async def run(self) -> None:
        """Deliver queued notifications until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                payload = await self._queue.get()
                await self._deliver(session, payload)
                self._queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
        for attempt in range(self.retries + 1):
            try:
                async with session.post(self.url, json=payload, headers=self.headers) as resp:
                    if resp.status < 300:
                        self.stats["sent"] += 1
                        return
                    # 4xx other than 408/429 will not get better by retrying.
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        break
                    err = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                err = type(exc).__name__
            if attempt < self.retries:
                self.stats["retries"] += 1
                await asyncio.sleep(self.backoff_s * 2**attempt)
        else:
            err = "retries exhausted"
        self.stats["failed"] += 1
        log.warning("survey webhook failed (%s)", err)  # the URL may hold a token: not logged

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until queued notifications are delivered."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.warning("survey webhook: %d notifications undelivered at shutdown", self._queue.qsize())


class ResultFanout:
    """The server's ``on_result``: attach to the call, then every sink, then the webhook."""

    def __init__(
        self, attach: AttachFn | None = None, sinks: Sequence[Callable[[SurveyResultRecord], None]] = (),
        webhook: Webhook | None = None, on_notes: Callable[[list[Note]], None] | None = None,
    ) -> None:
        self.attach = attach
        self.sinks = list(sinks)
        self.webhook = webhook
        self.on_notes = on_notes

    def __call__(self, rec: SurveyResultRecord) -> None:
        """Deliver one result everywhere; a failing sink is logged and skipped."""
        if self.attach is not None and rec.status != "not_eligible":
            notes: list[Note] = []
            for key in (rec.linkedid, rec.uniqueid):
                if key and not notes:
                    notes = self.attach(key, rec.to_survey())
            if self.on_notes is not None and notes:
                self.on_notes(notes)
        for sink in self.sinks:
            try:
                sink(rec)
            except Exception:
                log.exception("survey sink failed")
        if self.webhook is not None:
            self.webhook.submit(rec)


class MemorySurveyLog:
    """A bounded in-memory result list with the API's query (tests, the demo, or no database)."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.items: list[SurveyResultRecord] = []
        self.max_items = max_items

    def __call__(self, rec: SurveyResultRecord) -> None:
        """Sink: keep the result."""
        self.items.append(rec)
        del self.items[: -self.max_items]

    async def query(
        self, *, since: float | None, until: float | None, queue: str | None, agent: str | None,
        max_score: int | None, limit: int,
    ) -> list[dict[str, Any]]:
        """Results matching the filters, newest first."""
        out = [
            r for r in reversed(self.items)
            if (since is None or r.ended_ts >= since) and (until is None or r.ended_ts < until)
            and (queue is None or r.queue == queue) and (agent is None or r.agent == agent)
            and (max_score is None or (r.csat is not None and r.csat <= max_score))
        ]
        return [result_row(r) for r in out[:limit]]
