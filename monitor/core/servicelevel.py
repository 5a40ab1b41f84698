"""Every service-level definition side by side, ASA and abandonment rates, from per-queue counts.

One place for the formulas (report, API and metrics read them here). T is the service-level threshold (s); a wait
counts "within T" when ``wait_s <= T`` (app_queue compares ``holdtime <= servicelevel``). ``offered`` is the calls
that entered the queue (queue_log ENTERQUEUE; join-empty callers never entered); ``abandoned`` is every caller
hang-up while waiting (short ones included), ``short`` those under ``abandon_short_s``.

* ``answered``: answered within T ÷ answered — app_queue's ``servicelevel`` statistic (``ServicelevelPerf`` of
  QueueParams: ``callscompletedinsl / callscompleted``, apps/app_queue.c).
* ``answered_abandoned`` (SL2): (answered within T + abandoned within T) ÷ (answered + abandoned) — app_queue's
  ``ServicelevelPerf2``. (app_queue's own abandoned counter also counts timeouts and leave-empty, which raise
  QueueCallerAbandon; here abandoned means the caller hung up.)
* ``offered``: answered within T ÷ offered — the common contact-centre definition (every offered call counts).
* ``offered_no_short``: answered within T ÷ (offered - short abandons) — qmon's default (the report's
  ``service_level`` key): misdials do not count against the queue.

A Prometheus side needs, per queue: offered, answered, abandoned and short-abandon counters, and wait histograms of
answered and abandoned segments with T as a bucket bound (``qmon_queue_wait_seconds{outcome=...}`` has both).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SlDefinition(StrEnum):
    """The service-level definitions a supervisor may pick per queue (see the module for formulas)."""

    ANSWERED = "answered"
    ANSWERED_ABANDONED = "answered_abandoned"
    OFFERED = "offered"
    OFFERED_NO_SHORT = "offered_no_short"


SL_DEFINITIONS: tuple[str, ...] = tuple(d.value for d in SlDefinition)
DEFAULT_SL = SlDefinition.OFFERED_NO_SHORT.value


@dataclass(frozen=True, slots=True)
class SlCounts:
    """Counts of one queue over a period (calls, not seconds)."""

    offered: int
    answered: int
    answered_within: int
    abandoned: int  # every abandon, short ones included
    abandoned_within: int
    abandoned_short: int


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def service_levels(c: SlCounts) -> dict[str, float | None]:
    """Each :class:`SlDefinition` -> its value 0..1 (None when its denominator is 0)."""
    return {
        SlDefinition.ANSWERED.value: _ratio(c.answered_within, c.answered),
        SlDefinition.ANSWERED_ABANDONED.value: _ratio(c.answered_within + c.abandoned_within,
                                                      c.answered + c.abandoned),
        SlDefinition.OFFERED.value: _ratio(c.answered_within, c.offered),
        SlDefinition.OFFERED_NO_SHORT.value: _ratio(c.answered_within, c.offered - c.abandoned_short),
    }


def abandon_rates(c: SlCounts) -> tuple[float | None, float | None]:
    """(abandoned ÷ offered, (abandoned - short) ÷ (offered - short)): with and without short abandons."""
    return _ratio(c.abandoned, c.offered), _ratio(c.abandoned - c.abandoned_short, c.offered - c.abandoned_short)


def parse_queue_map(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    """``("support=offered", ...)`` -> {queue: value}; ValueError naming ``what`` for an entry without ``=``."""
    out: dict[str, str] = {}
    for p in pairs:
        queue, sep, value = p.partition("=")
        if not sep or not queue.strip() or not value.strip():
            raise ValueError(f"{what}: {p!r} is not queue=value")
        out[queue.strip()] = value.strip()
    return out


def sl_definition_map(default: str, pairs: tuple[str, ...]) -> dict[str, str]:
    """Validated per-queue definitions (``""`` key = the default); ValueError names the setting and the entry."""
    chosen = {"": default, **parse_queue_map(pairs, "queue_sl_definition")}
    for queue, d in chosen.items():
        if d not in SL_DEFINITIONS:
            where = f"queue_sl_definition: {queue}=" if queue else "sl_definition: "
            raise ValueError(f"{where}{d!r} is not a service-level definition (one of {', '.join(SL_DEFINITIONS)})")
    return chosen
