"""How the writer tells an outage from bad data, bounds a silent database, and names errors without values."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError, StatementError

T = TypeVar("T")


class SchemaNotReady(RuntimeError):
    """The database is reachable but not migrated to this version's schema."""


class DatabaseSilent(TimeoutError):
    """The database did not answer one batch within the deadline (a blackholed or hung server)."""


def error_kind(exc: BaseException) -> str:
    """``data`` (this batch can never be written), ``outage`` (refused, reset, locked, timeout) or ``probe``."""
    if isinstance(exc, DataError | IntegrityError):
        return "data"
    if isinstance(exc, OperationalError | InterfaceError) or not isinstance(exc, StatementError):
        return "outage"
    if not isinstance(exc, DBAPIError):
        return "data"  # a value our types could not bind
    # Drivers report some bad values generically (asyncpg: "invalid input for query argument"): ask the DB.
    return "outage" if exc.connection_invalidated else "probe"


def describe(exc: BaseException) -> str:
    """The error's class (and the driver's class under SQLAlchemy's), never its message.

    Driver messages and SQLAlchemy's ``[parameters: ...]`` can hold row values (caller numbers and names);
    this text goes to logs and /readyz.
    """
    name = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is not None:
        name += f" ({type(orig).__name__})"
    cause = exc.__cause__
    if orig is None and isinstance(cause, BaseException) and not isinstance(exc, DatabaseSilent):
        name += f" ({type(cause).__name__})"
    if isinstance(exc, DatabaseSilent):
        name += f": {exc}"  # our own fixed text with the deadline
    return name


def _consume(task: asyncio.Task[Any]) -> None:
    # The abandoned batch ends in the background (its driver timeout closes the connection); read its result
    # so asyncio does not log "exception was never retrieved" with the SQL parameters in it.
    with contextlib.suppress(BaseException):
        task.result()


async def bounded(coro: Coroutine[Any, Any, T], deadline_s: float) -> T:
    """Await ``coro`` at most ``deadline_s`` s, then raise :class:`DatabaseSilent`.

    ``asyncio.wait_for`` would wait for the cancelled coroutine's clean-up (a ROLLBACK on a socket nobody
    answers): the task is cancelled and left to finish on its own instead.
    """
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=deadline_s)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_consume)
        raise
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(_consume)
    raise DatabaseSilent(f"no answer within {deadline_s:g} s")
