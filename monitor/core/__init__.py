"""The pure core: event types, normalisation, the call tracker, reports and survey policy.

Nothing in this package does I/O, reads the clock, or imports asyncio, panoramisk, sqlalchemy or
prometheus_client: time is always passed in, so every behaviour is replayable and unit-testable.

* ``events`` / ``normalize``: AMI headers -> typed events named as Asterisk spells them (or a counted Skip).
* ``tracker``: :class:`CallTracker`, the public face; ``state`` holds its explicit :class:`TrackerState`,
  ``handlers`` apply one event type each, ``calls`` the call lifecycle, ``segments`` the segment state
  machine (SegmentState, the transitions table), ``members``/``transfers``/``repeat`` their own bookkeeping.
* ``records``: the frozen call records and live notes; ``report``: the replay/summary report.
* ``agents`` (+ ``memberacc``): per (queue, agent) measures, read with ``AgentBoard.snapshot(now)``;
  ``owed``: callers owed a call, ``OwedCallbacks.open()``/``stats(now)``; ``servicelevel``: every SL definition.
* ``vocab``: outcomes, survey statuses, skip reasons, the CSAT/NPS/CES ranges (one place for the whole app).
* ``survey``: survey policy and conversation; ``clock``: PBX time; ``ingest``: one message in, notes out.
"""
