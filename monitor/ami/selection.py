"""What the call tracker reads from AMI, derived from the normaliser's own tables (never a hand list).

Used by the wire parser's fast path (:class:`monitor.ami.wire.Selection`) and by the ``manager.conf``
``eventfilter`` generator (:mod:`monitor.ami.eventfilter`).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable

from monitor.ami.wire import Selection
from monitor.core import normalize
from monitor.core.normalize import TRACKED_VARIABLES, event_builders, tracked_events
from monitor.core.preread import PREREAD_EVENT

#: Events qmon uses outside the tracker: survey callbacks wait for the answer to their Originate and watch
#: ``SoftHangupRequest`` (who hung up an owed callback); the live source ends the session on ``Shutdown`` (with
#: the ``system`` read privilege only, but never filter it out).
DAEMON_EVENTS = frozenset({"OriginateResponse", "Shutdown", "SoftHangupRequest"})


def tracker_events(extra: Iterable[str] = DAEMON_EVENTS) -> frozenset[str]:
    """Event names the tracker normalises, plus ``extra`` (default: the daemon's own listeners)."""
    return tracked_events() | frozenset(extra)


#: Attribute names through which a function reads headers generically (every key): ``r.h.items()`` etc.
_GENERIC = frozenset({"items", "keys", "values", "__iter__"})


def _module_functions() -> dict[str, types.FunctionType]:
    """The normaliser's functions and its classes' methods (``_Reader.chan`` ...), by name."""
    out: dict[str, types.FunctionType] = {}
    for name, obj in vars(normalize).items():
        if isinstance(obj, types.FunctionType) and obj.__module__ == normalize.__name__:
            out[name] = obj
        elif isinstance(obj, type) and obj.__module__ == normalize.__name__:
            out.update((n, m) for n, m in vars(obj).items() if isinstance(m, types.FunctionType))
    return out


def _code_tree(fn: Callable[..., object], functions: dict[str, types.FunctionType]) -> list[types.CodeType]:
    """The code of ``fn``, its nested functions, and the normaliser's functions/methods it names."""
    seen: set[types.CodeType] = set()
    stack, out = [fn.__code__], []
    while stack:
        code = stack.pop()
        if code in seen:
            continue
        seen.add(code)
        out.append(code)
        stack += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        stack += [functions[n].__code__ for n in code.co_names if n in functions]
    return out


def headers_read() -> dict[str, frozenset[str] | None]:
    """Event name -> the header names its normaliser builder may read (None: it reads every header).

    Derived from the normaliser's code, not listed by hand: every identifier-like string constant of the builder
    and of every normaliser function or ``_Reader`` method it names (a superset: a constant that is no header
    name costs nothing); a builder that iterates the headers (``UserEvent`` keeps all its fields) gets None.
    ``Event`` and ``Timestamp`` are always included (``Ingest`` and ``qmon replay`` read them).
    """
    functions = _module_functions()
    out: dict[str, frozenset[str] | None] = {}
    for name, fn in event_builders().items():
        keys = {"Event", "Timestamp"}
        generic = False
        for code in _code_tree(fn, functions):
            keys.update(c for c in code.co_consts if isinstance(c, str) and c.isidentifier())
            generic = generic or bool(_GENERIC & set(code.co_names))
        out[name] = None if generic else frozenset(keys)
    return out


def tracker_selection(extra: Iterable[str] = DAEMON_EVENTS, gap_clock: bool = False,
                      subset: bool = True, defer: bool = False) -> Selection:
    """The parser selection for the tracker: its events, ``VarSet`` only of the variables it reads, and (with
    ``subset``) of each tracked event only the headers its builder reads; ``extra`` events are parsed whole.

    ``defer`` (consumers that feed :class:`~monitor.core.ingest.Ingest` only): ``Newexten`` is handed over
    pre-read, for ``Ingest.feed`` to decide in stream order — unless ``extra`` names it (a listener wants it).
    """
    extra = frozenset(extra)
    read = {e: h for e, h in headers_read().items() if h is not None} if subset else None
    return Selection(tracker_events(extra), TRACKED_VARIABLES, gap_clock=gap_clock, headers=read,
                     defer=defer and PREREAD_EVENT not in extra)
