"""The low-score webhook: survey answers with a CSAT at or below a threshold POSTed as JSON, with retries.

(Every answer also goes to its call, the metrics and the store through ``Ingest.survey``: see ``monitor.daemon``.)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

import aiohttp

from monitor.core.records import SurveyResultRecord

log = logging.getLogger("qmon.survey.results")

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
            self._queue.put_nowait({"event": "survey.low_score", "survey": asdict(rec)})
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
