"""What the survey server is handed by the daemon (monitor.daemon wires them): the call lookup, the result sink,
the local time of day, and the callback scheduler's claims (monitor.survey.callback implements them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dtime
from typing import Protocol

from monitor.core.records import CallRecord
from monitor.core.survey import SurveyResultRecord

__all__ = ["CallbackClaims", "CallbackTarget", "LocalTimeFn", "LookupFn", "ResultSink", "local_time"]

LookupFn = Callable[[str | None, str | None], CallRecord | None]
ResultSink = Callable[[SurveyResultRecord], None]
LocalTimeFn = Callable[[float], dtime]


def local_time(ts: float) -> dtime:
    """Wall-clock time of ``ts`` in the daemon's local zone (what quiet hours mean to a site)."""
    return datetime.fromtimestamp(ts).time()


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """The original call a callback survey is about (handed over by the callback scheduler).

    ``decline`` non-empty: the job already ended that way (given up, claimed): say goodbye, record nothing.
    """

    record: CallRecord
    caller: str
    language: str | None
    decline: str = ""


class CallbackClaims(Protocol):
    """What the server needs from the callback scheduler (a token -> the original call)."""

    def claim(self, token: str) -> CallbackTarget | None:
        """The target of a callback whose survey channel just connected, once."""
        ...
