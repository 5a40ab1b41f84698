"""The pure core: event types, normalisation, the call tracker, reports and survey policy.

Nothing in this package does I/O, reads the clock, or imports asyncio, panoramisk, sqlalchemy or
prometheus_client: time is always passed in, so every behaviour is replayable and unit-testable.
"""
