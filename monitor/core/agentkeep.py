"""The agent columns kept from read to read: what /metrics takes of every (queue, agent) each scrape, made in C.

:func:`~monitor.core.agentcols.agent_columns` reads every accumulator in Python (~2 us a member: 20 ms at 10 000
members, every scrape). Between two facts an accumulator's values are fixed, but for the seconds that time moves:
its current state's (counted from its ``cursor``), its open pause's (from ``pause_ts``) and its logged-in time (from
``login_ts``), hence its occupancy. :class:`ColumnKeeper` reads again only the accumulators a fact touched since the
last read (:attr:`AgentBoard.touched`) and computes the moving values of all rows at once with ``map`` over lists,
by :func:`agent_columns`' own arithmetic (tests/test_agentcols.py: equal, value for value, after random facts).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from itertools import chain, compress, repeat
from operator import add, attrgetter, is_not, itemgetter, lt, mul, setitem, sub, truediv
from typing import Any

from monitor.core.agentcols import AgentColumns, agent_columns
from monitor.core.agents import TIME_STATES, AgentBoard, pause_label
from monitor.core.memberacc import MemberAcc

_TIME_OF = itemgetter(*TIME_STATES)
_INDEX = {s: i for i, s in enumerate(TIME_STATES)}
_IN_CALL, _WRAPUP, _PAUSED = _INDEX["in_call"], _INDEX["wrapup"], _INDEX["paused"]
_N = len(TIME_STATES)
_SLOTS = _N + 1  # a row's state seconds, then a spare slot where a row that does not move writes its nothing
_NO_LABELS: dict[str, float] = {}  # shared by the rows never paused: read only
_KEY = attrgetter("queue", "agent")


class _Rec:
    """One accumulator between two facts: its fixed values, and where its moving ones start from. ``dynamic``: read
    whole at every read instead (a wrap-up that may end before the read; a pause label two reasons share, whose
    sum depends on the order :meth:`AgentBoard.measures` adds them in)."""

    __slots__ = ("base", "cursor", "dynamic", "labels", "latest", "logged_in", "logged_in_s", "login_ts", "move",
                 "move_base", "pause_base", "pause_label", "pause_ts", "since", "state")

    def __init__(self, board: AgentBoard, a: MemberAcc) -> None:
        self.state, self.since, self.logged_in_s = a.state, a.since, a.logged_in_s
        try:
            base = list(_TIME_OF(a.state_s))
        except KeyError:
            base = [a.state_s.get(s, 0.0) for s in TIME_STATES]
        self.base = (*base, 0.0)
        # What does not move writes into the spare slot, and its logged-in seconds gain (at - 0.0) * 0.0: x + 0.0
        # and x + -0.0 are x, and no value here is a -0.0.
        self.dynamic, self.move, self.move_base, self.cursor = False, _N, 0.0, 0.0
        self.login_ts, self.logged_in = 0.0, 0.0
        self.pause_label: str | None = None
        self.pause_base = self.pause_ts = 0.0
        if a.logged_in:
            self.login_ts, self.logged_in = a.login_ts, 1.0
            i = _INDEX.get(a.state, -1)
            if i < 0 or (a.state == "wrapup" and a.wrap_end is not None):
                self.dynamic = True
            else:
                self.move, self.move_base, self.cursor = i, base[i], a.cursor
        self.latest = max(self.cursor, self.login_ts)  # read at or after this, max(0.0, at - t) is at - t
        if not (a.paused or a.paused_by_reason):
            self.labels = _NO_LABELS
            return
        # AgentBoard.measures' sums by label, but for the open pause's reason: its seconds move (added per read).
        moving = a.pause_reason if a.paused and a.logged_in else None
        allowed = board.pause_reasons
        label = pause_label(moving, allowed) if moving is not None else None
        labels: dict[str, float] = {}
        for reason, secs in a.paused_by_reason.items():
            if reason == moving:
                continue
            lab = pause_label(reason, allowed)
            if lab == label:
                self.dynamic = True
            labels[lab] = labels.get(lab, 0.0) + secs
        self.labels = labels
        if moving is not None:
            self.pause_label, self.pause_base, self.pause_ts = label, a.paused_by_reason.get(moving, 0.0), a.pause_ts
            self.latest = max(self.latest, a.pause_ts)


_ACC_FIELDS = ("talk_s", "answered", "completed", "rna")
_REC_FIELDS = ("state", "since", "labels", "logged_in_s", "login_ts", "logged_in", "move_base", "cursor", "pause_label",
               "pause_base", "pause_ts", "move", "dynamic")


class ColumnKeeper:
    """:func:`agent_columns` of one board, kept from read to read (see the module)."""

    def __init__(self, board: AgentBoard) -> None:
        self.board = board
        self._order: list[MemberAcc] = []  # the board's ordered(), as of the last read
        self._seen = 0  # how many of board.created the rows hold
        self._keys: list[tuple[str, str]] = []  # row i is the accumulator of key i (sorted, as the board's order)
        self._recs: dict[tuple[str, str], _Rec] = {}
        self._latest = -math.inf  # no read before this (PBX epoch s): agent_columns then (never the daemon's case)
        # Row i of each list is the i-th accumulator of the order.
        self._queue: list[str] = []
        self._agent: list[str] = []
        self._talk: list[float] = []
        self._answered: list[int] = []
        self._completed: list[int] = []
        self._rna: list[int] = []
        self._state: list[str] = []
        self._since: list[float | None] = []
        self._labels: list[dict[str, float]] = []
        self._logged_in_s: list[float] = []
        self._login_ts: list[float] = []
        self._logged_in: list[float] = []  # 1.0 while logged in, else 0.0
        self._move_base: list[float] = []
        self._cursor: list[float] = []
        self._pause_label: list[str | None] = []
        self._pause_base: list[float] = []
        self._pause_ts: list[float] = []
        self._move: list[int] = []  # which of its slots moves (the spare one: none)
        self._is_dynamic: list[bool] = []
        self._base: list[float] = []  # every row's state seconds as of its cursor, and its spare slot
        self._move_at: list[int] = []  # where in _base each row's moving seconds are
        self._dynamic: list[int] = []  # the rows read whole

    def columns(self, at: float) -> AgentColumns:
        """:func:`agent_columns` of the board as of ``at`` (epoch s, PBX clock)."""
        board = self.board
        touched, board.touched = board.touched, set()
        for key in touched:
            self._recs.pop(key, None)
        self._order = accs = board.ordered()
        if self._seen != len(board.created):  # members joined
            new = board.created[self._seen:]
            self._seen = len(board.created)
            if len(new) > 32 or len(self._keys) + len(new) != len(accs):  # many (a first sight): listed at once
                self._relist(accs)
            else:  # a few: put in place, as the board's order does (a listing of 10 000 rows is ~10 ms)
                for key in new:
                    self._insert(bisect_left(self._keys, key), key)
                self._moved()
        for key in touched:
            r = bisect_left(self._keys, key)
            if r < len(self._keys) and self._keys[r] == key and key not in self._recs:
                self._reread(r, accs[r])
        if not (at >= self._latest and math.isfinite(at)):
            return agent_columns(board, at)
        return self._now(accs, at)

    def _rec(self, a: MemberAcc) -> _Rec:
        rec = self._recs[(a.queue, a.agent)] = _Rec(self.board, a)
        self._latest = max(self._latest, rec.latest)
        return rec

    def _row_lists(self) -> tuple[list[Any], ...]:
        """The per-row lists filled from a record, in :data:`_REC_FIELDS` order."""
        return (self._state, self._since, self._labels, self._logged_in_s, self._login_ts, self._logged_in,
                self._move_base, self._cursor, self._pause_label, self._pause_base, self._pause_ts, self._move,
                self._is_dynamic)

    def _acc_lists(self) -> tuple[list[Any], ...]:
        """The per-row lists filled from an accumulator, in :data:`_ACC_FIELDS` order."""
        return self._talk, self._answered, self._completed, self._rna

    def _relist(self, accs: list[MemberAcc]) -> None:
        """Every row listed again (the records of untouched rows are kept)."""
        keys = self._keys = list(map(_KEY, accs))
        recs = list(map(self._recs.get, keys))
        if None in recs:
            recs = [rec if rec is not None else self._rec(a) for rec, a in zip(recs, accs, strict=True)]
        self._queue, self._agent = list(map(itemgetter(0), keys)), list(map(itemgetter(1), keys))
        for column, f in zip(self._acc_lists(), _ACC_FIELDS, strict=True):
            column[:] = map(attrgetter(f), accs)
        for column, f in zip(self._row_lists(), _REC_FIELDS, strict=True):
            column[:] = map(attrgetter(f), recs)
        self._base = list(chain.from_iterable(map(attrgetter("base"), recs)))
        self._moved()

    def _insert(self, r: int, key: tuple[str, str]) -> None:
        """A member joined: its row put in at ``r``."""
        a = self.board.accs[key]
        rec = self._recs.get(key) or self._rec(a)
        self._keys.insert(r, key)
        self._queue.insert(r, key[0])
        self._agent.insert(r, key[1])
        for column, f in zip(self._acc_lists(), _ACC_FIELDS, strict=True):
            column.insert(r, getattr(a, f))
        for column, f in zip(self._row_lists(), _REC_FIELDS, strict=True):
            column.insert(r, getattr(rec, f))
        self._base[r * _SLOTS:r * _SLOTS] = rec.base

    def _moved(self) -> None:
        """Where each row's moving seconds are, and which rows are read whole, from the per-row lists."""
        self._move_at = list(map(add, range(0, _SLOTS * len(self._move), _SLOTS), self._move))
        self._dynamic = list(compress(range(len(self._is_dynamic)), self._is_dynamic))

    def _reread(self, r: int, a: MemberAcc) -> None:
        """A fact touched row ``r``: its record read again."""
        rec = self._rec(a)
        for column, f in zip(self._acc_lists(), _ACC_FIELDS, strict=True):
            column[r] = getattr(a, f)
        for column, f in zip(self._row_lists(), _REC_FIELDS, strict=True):
            column[r] = getattr(rec, f)
        self._base[r * _SLOTS:(r + 1) * _SLOTS] = rec.base
        self._move_at[r] = r * _SLOTS + rec.move
        if rec.dynamic != (r in self._dynamic):
            self._dynamic = sorted(set(self._dynamic) ^ {r})

    def _now(self, accs: list[MemberAcc], at: float) -> AgentColumns:
        """The columns as of ``at``, a copy: nothing the next read changes escapes."""
        rows = len(accs)
        c = AgentColumns(at, list(self._queue), list(self._agent), list(self._state), list(self._since))
        c.talk_s, c.answered, c.completed, c.ring_no_answer = (
            list(self._talk), list(self._answered), list(self._completed), list(self._rna))
        c.pausing = list(self._pause_label)
        labels = list(self._labels)
        # agent_columns: values[i] + (at - a.cursor) for the current state i (at >= every cursor here).
        state_s = list(self._base)
        deque(map(setitem, repeat(state_s), self._move_at, map(add, self._move_base, map(
            sub, repeat(at), self._cursor))), 0)
        del state_s[_N::_SLOTS]  # the spare slots
        # logged_in_s + max(0.0, at - login_ts) while logged in, else logged_in_s.
        logged = list(map(add, self._logged_in_s, map(mul, map(sub, repeat(at), self._login_ts), self._logged_in)))
        pausing = list(map(is_not, self._pause_label, repeat(None)))
        if True in pausing:  # measures: the open pause's reason, paused_by_reason[reason] + max(0.0, at - pause_ts)
            since = compress(self._pause_ts, pausing)
            secs = map(add, compress(self._pause_base, pausing), map(sub, repeat(at), since))
            fresh = list(map(dict.copy, compress(labels, pausing)))
            deque(map(setitem, fresh, compress(self._pause_label, pausing), secs), 0)  # type: ignore[arg-type]
            deque(map(setitem, repeat(labels), compress(range(rows), pausing), fresh), 0)
        measures = self.board.measures
        for r in self._dynamic:  # read whole, as agent_columns reads a paused row
            st_s, c.state[r], c.since[r], logged[r], _, labels[r] = measures(accs[r], at)
            state_s[r * _N:(r + 1) * _N] = [st_s.get(s, 0.0) for s in TIME_STATES]
        c.state_s, c.paused_by_label = state_s, labels
        c.wrapup_s = state_s[_WRAPUP::_N]
        # (in_call + wrapup) / (logged - paused) where that is > 0, else None (no series).
        avail = list(map(sub, logged, state_s[_PAUSED::_N]))
        busy = map(add, state_s[_IN_CALL::_N], c.wrapup_s)
        some = list(map(lt, repeat(0.0), avail))
        if False not in some:
            c.occupancy = list(map(truediv, busy, avail))
        else:
            occupancy: list[float | None] = [None] * rows
            deque(map(setitem, repeat(occupancy), compress(range(rows), some),
                      map(truediv, compress(busy, some), compress(avail, some))), 0)
            c.occupancy = occupancy
        return c
