"""The 11 per-agent families as text (~20 lines per member: 200 000 lines at 10 000 members), written from the
agent columns and the renderer's caches: exactly what :func:`monitor.web.supervisor.agent_families` renders to.

Each family is written in blocks of whole queues (~1 600 members; a block's key is its first queue): a member who
joins changes the prefixes of its own block only, so the other blocks keep their cached lines (with blocks of fixed
line counts every block after the newcomer shifted and was written again: ~60 ms). Each block of each family is a
:meth:`Renderer.column`: only the values that moved since the last scrape are formatted again.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from itertools import accumulate, chain, compress, repeat
from operator import add, and_, attrgetter, eq, is_, is_not, le, lt, mul, ne, setitem, sub
from typing import Any, cast

from monitor.core.agentcols import AgentColumns, concat
from monitor.core.agents import AGENT_STATES, TIME_STATES
from monitor.core.ingest import LiveState
from monitor.web.exposition import Renderer, label_value

_INDEX = {s: i for i, s in enumerate(TIME_STATES)}
ROWS = 1600  # members per block: ~8 000 lines of the largest families (state seconds: 5 a member; state: 6)

Block = tuple[tuple[str, str], int, int]  # (its first (pbx, queue), first row, end row)


def agent_text(render: Renderer, states: Sequence[tuple[str, LiveState]], per: list[AgentColumns],
               headers: Sequence[bytes]) -> Iterator[bytes]:
    """The per-agent families of ``states`` (sorted by pbx; ``per``: their columns) in parts: a family's header,
    then its blocks (see the module). ``headers``: the 11 families' HELP/TYPE lines."""
    c = concat(per)
    pbxs = [states[0][0]] * len(c.queue) if len(per) == 1 else [
        pbx for (pbx, _), x in zip(states, per, strict=True) for _ in x.queue]
    made: dict[Any, _Row] = render.memo("agent_rows", None, dict)
    blocks = _blocks(render, [pbx for pbx, _ in states], [len(x.queue) for x in per], c.queue)
    ps = [_prefixes(render, a, pbxs[s:e], c.queue[s:e], c.agent[s:e], made) for a, s, e in blocks]
    n = len(TIME_STATES)
    rows = len(c.state)
    # Each row's current state's seconds moved since the last scrape, and so did its duration and its open pause's
    # seconds: formatted once, here. A duration or pause of the same value (a state or pause not held before:
    # 0.0 + (at - since) is at - since) takes the same text (formatting is ~1 us a value: most of a scrape).
    moving = cast(list[int], list(map(_INDEX.get, c.state, repeat(-1))))  # each row's current state's slot
    live = list(map(le, repeat(0), moving))
    live_rows = list(compress(range(rows), live))
    cur = list(map(c.state_s.__getitem__, map(add, map(mul, live_rows, repeat(n)), compress(moving, live))))
    cur_texts = render.fresh(cur)
    row_cur: list[Any] = [None] * rows
    row_text: list[str | None] = [None] * rows
    deque(map(setitem, repeat(row_cur), live_rows, cur), 0)
    deque(map(setitem, repeat(row_text), live_rows, cur_texts), 0)
    # Board values are 0.0 plus non-negative amounts, or max(0.0, ...): never a -0.0 (signed=False), but for the
    # timestamps in ``since``, which come from the PBX as they are.
    yield headers[0]
    for (a, s, e), p in zip(blocks, ps, strict=True):
        yield _moving(render, ("agent_state_s", a), p.state_s, c.state_s[s * n:e * n], n, moving[s:e],
                      row_text[s:e])
    # Pause reasons: every configured label plus any other the row has, sorted (as agent_families).
    labs: list[tuple[str, ...]] = []
    for (_, st), x in zip(states, per, strict=True):
        base = tuple(sorted(set(st.pause_labels)))
        allowed = set(base)
        if allowed.issuperset(chain.from_iterable(x.paused_by_label)):  # the usual case: no reason outside them
            labs += [base] * len(x.paused_by_label)
        else:
            labs.extend(base if d.keys() <= allowed else tuple(sorted({*base, *d})) for d in x.paused_by_label)
    alike = len(per) == 1 and bool(labs) and labs.count(labs[0]) == len(labs)  # one PBX, every row the same labels
    yield headers[1]
    if alike and len(c.pausing) == rows:  # in C; the open pause's line moves, the others are kept per row
        width = len(labs[0])
        paused: list[Any] = [None] * (rows * width)
        for j, lab in enumerate(labs[0]):
            paused[j::width] = map(dict.get, c.paused_by_label, repeat(lab), repeat(0.0))
        slot = {lab: j for j, lab in enumerate(labs[0])}
        open_at = cast(list[int], list(map(slot.get, c.pausing, repeat(-1))))  # type: ignore[arg-type]
        pausing = list(map(le, repeat(0), open_at))
        opened = list(map(paused.__getitem__, map(add, map(mul, compress(range(rows), pausing), repeat(width)),
                                                  compress(open_at, pausing))))
        same = list(map(eq, opened, compress(row_cur, pausing)))  # board values: never a -0.0 among them
        pause_text: list[str | None] = [None] * rows
        deque(map(setitem, repeat(pause_text), compress(compress(range(rows), pausing), same),
                  compress(compress(row_text, pausing), same)), 0)
        for (a, s, e), p in zip(blocks, ps, strict=True):
            yield _moving(render, ("agent_paused", a), p.paused(labs[s:e], alike), paused[s * width:e * width],
                          width, open_at[s:e], pause_text[s:e])
    else:
        flat = [d.get(lab, 0.0) for d, ls in zip(c.paused_by_label, labs, strict=True) for lab in ls]
        at = [0, *accumulate(map(len, labs))]
        for (a, s, e), p in zip(blocks, ps, strict=True):
            yield render.column(("agent_paused", a), p.paused(labs[s:e], alike), flat[at[s]:at[e]], signed=False)
    singles: list[tuple[str, str, list[Any]]] = [
        ("talk", "talk", c.talk_s), ("wrap", "wrap", c.wrapup_s), ("calls", "calls", c.answered),
        ("done", "done", c.completed), ("rna", "rna", c.ring_no_answer)]
    for i, (key, field, values) in enumerate(singles, start=2):
        yield headers[i]
        for (a, s, e), p in zip(blocks, ps, strict=True):
            yield render.column((key, a), getattr(p, field), values[s:e], signed=False)
    yield headers[7]
    for (a, s, e), p in zip(blocks, ps, strict=True):
        yield _state_text(render, a, p, c.state[s:e])
    since: list[Any] = c.since
    seen = list(map(is_not, since, repeat(None))) if None in since else None  # never logged in: no since/duration
    if len(per) == 1:  # one clock for every row: in C, same arithmetic
        dur = list(map(sub, repeat(states[0][1].agents_at), map(_or_zero, since) if seen else since))
        if False in map(lt, repeat(0.0), dur):  # max(0.0, x) is x itself when x > 0 (not NaN, not a zero)
            dur = list(map(max, repeat(0.0), dur))
    else:
        ats = [t for (_, st), x in zip(states, per, strict=True) for t in [st.agents_at] * len(x.queue)]
        dur = [max(0.0, at - t) if t is not None else 0.0 for at, t in zip(ats, since, strict=True)]
    # Every duration moved: its text is the current state's seconds' when they are equal (no zero among them: a
    # 0.0 equals a -0.0, which prints apart), else formatted; written whole.
    same = list(map(and_, map(eq, dur, row_cur), map(bool, row_cur)))
    dur_texts: list[str | None] = [None] * rows
    deque(map(setitem, repeat(dur_texts), compress(range(rows), same), compress(row_text, same)), 0)
    if None in dur_texts:
        missing = list(map(is_, dur_texts, repeat(None)))
        deque(map(setitem, repeat(dur_texts), compress(range(rows), missing),
                  render.fresh(list(compress(dur, missing)))), 0)
    yield headers[8]
    yield from _filtered(render, "agent_since", blocks, ps, "since", since, seen, signed=True)
    yield headers[9]
    for (_, s, e), p in zip(blocks, ps, strict=True):
        prefixes, texts = p.dur, dur_texts[s:e]
        if seen is not None:
            prefixes, texts = tuple(compress(prefixes, seen[s:e])), list(compress(texts, seen[s:e]))
        lines: list[str | None] = [None] * (2 * len(texts))
        lines[0::2], lines[1::2] = prefixes, texts
        yield "".join(cast(list[str], lines)).encode()
    occ: list[Any] = c.occupancy
    some = list(map(is_not, occ, repeat(None))) if None in occ else None  # no time available yet: no occupancy
    yield headers[10]
    yield from _filtered(render, "agent_occ", blocks, ps, "occ", occ, some)


def _prefixes(render: Renderer, block: tuple[str, str], pbxs: list[str], queues: list[str], agents: list[str],
              made: dict[Any, _Row]) -> _Prefixes:
    """A block's prefixes, made again only when its rows changed (a member joined it)."""
    return cast(_Prefixes, render.memo(("agents", block), (pbxs, queues, agents),
                                       lambda: _Prefixes(pbxs, queues, agents, made)))


def _or_zero(t: float | None) -> float:
    return 0.0 if t is None else t


def _filtered(render: Renderer, key: str, blocks: list[Block], ps: list[_Prefixes], field: str, values: list[Any],
              keep: list[bool] | None, signed: bool = False) -> Iterator[bytes]:
    """One line per row (only the rows ``keep`` says, if given) in the blocks."""
    for (a, s, e), p in zip(blocks, ps, strict=True):
        prefixes: Sequence[str] = getattr(p, field)
        vals = values[s:e]
        if keep is not None:
            k = keep[s:e]
            prefixes, vals = tuple(compress(prefixes, k)), list(compress(vals, k))
        yield render.column((key, a), prefixes, vals, signed)


_MOVING = object()  # in place of a row's moving value, where its kept lines are compared


def _moving(render: Renderer, key: tuple[str, tuple[str, str]], prefixes: tuple[str, ...], values: list[Any],
            width: int, moving: list[int], texts: list[str | None]) -> bytes:
    """A block of ``width`` lines per row of which at most one moves (its slot in ``moving``, -1: none; its text in
    ``texts``, None: to be made). The text between two moving values is kept (made again where a kept value
    changed), and the block is written as kept, moving, kept, ... Board values only: never a -0.0 (it equals 0.0:
    the kept values are compared by value)."""
    prev = render.memo(("kept", key), None, dict)
    slots = tuple(moving)
    if prev.get("slots") == slots:
        live, at = prev["live"], prev["at"]
    else:
        live = list(map(le, repeat(0), moving))
        at = list(map(add, map(mul, compress(range(len(moving)), live), repeat(width)), compress(moving, live)))
    kept = list(values)
    deque(map(setitem, repeat(kept), at, repeat(_MOVING)), 0)
    still = tuple(kept)
    if prev.get("prefixes") is prefixes and len(prev["still"]) == len(still):
        rows = prev["rows"]
        if prev["still"] != still:  # facts changed some rows (a kept value, or which one moves): made again
            rows = list(rows)
            redo = sorted({i // width for i in compress(range(len(still)), map(ne, still, prev["still"]))})
            for r, again in zip(redo, _kept_lines(render, prefixes, values, width, moving, redo), strict=True):
                rows[r] = again
            gaps = _gaps(rows)
        else:
            gaps = prev["gaps"]
    else:  # rows listed again: every row made again
        rows = _kept_lines(render, prefixes, values, width, moving, range(len(moving)))
        gaps = _gaps(rows)
    # Tuples: the garbage collector does not walk them (see exposition._Column).
    prev.update(prefixes=prefixes, slots=slots, live=live, at=at, still=still, rows=tuple(rows), gaps=gaps)
    now = list(compress(texts, live))
    if None in now:
        missing = list(map(is_, now, repeat(None)))
        deque(map(setitem, repeat(now), compress(range(len(now)), missing),
                  render.fresh(list(compress(map(values.__getitem__, at), missing)))), 0)
    flat: list[str | None] = [None] * (2 * len(now) + 1)
    flat[0::2] = gaps
    flat[1::2] = now
    return "".join(cast(list[str], flat)).encode()


def _gaps(rows: Sequence[tuple[str, str | None]]) -> tuple[str, ...]:
    """The kept text before the first moving value, between each two, after the last (rows: lines before their
    moving one with its prefix, lines after it; a row that does not move: all its lines, and None)."""
    gaps: list[str] = []
    pending: list[str] = []
    for head, tail in rows:
        pending.append(head)
        if tail is not None:
            gaps.append("".join(pending))
            pending = [tail]
    gaps.append("".join(pending))
    return tuple(gaps)


def _kept_lines(render: Renderer, prefixes: tuple[str, ...], values: list[Any], width: int, moving: list[int],
                rows: Sequence[int]) -> list[tuple[str, str | None]]:
    """Each of ``rows``: its lines before its moving one (slot in ``moving``) and that line's prefix, and its lines
    after it; a row that does not move (-1): all its lines, and None. The values' texts made at once (the cache of
    :meth:`Renderer.texts`: kept values repeat, zeros above all)."""
    if len(rows) == len(moving):
        vals, prefs = values, prefixes
    else:
        vals = [v for r in rows for v in values[r * width:(r + 1) * width]]
        prefs = tuple(p for r in rows for p in prefixes[r * width:(r + 1) * width])
    lines = list(map(add, prefs, render.texts(vals)))
    out: list[tuple[str, str | None]] = []
    for i, r in enumerate(rows):
        row = lines[i * width:(i + 1) * width]
        m = moving[r]
        out.append(("".join(row), None) if m < 0 else
                   ("".join(row[:m]) + prefs[i * width + m], "".join(row[m + 1:])))
    return out


def _blocks(render: Renderer, pbxs: list[str], sizes: list[int], queue: list[str]) -> list[Block]:
    """The blocks of the rows (sorted by pbx, then queue and agent): each starts at the first row of a queue, the
    first queues of the blocks kept from scrape to scrape (laid out again when one grew past twice :data:`ROWS`)."""
    kept: dict[str, list[str]] = render.memo("agent_blocks", None, dict)  # pbx -> first queue of each block
    out: list[Block] = []
    off = 0
    for pbx, size in zip(pbxs, sizes, strict=True):
        end = off + size
        starts = kept.get(pbx)
        if starts is not None:
            at = [bisect_left(queue, q, off, end) for q in starts[1:]]
            bounds = list(zip([off, *at], [*at, end], strict=True))
            if any(e - s > 2 * ROWS and queue[s] != queue[e - 1] for s, e in bounds):
                starts = None
        if starts is None:
            old = kept.get(pbx, [])
            starts = kept[pbx] = _layout(queue, off, end)
            render.forget((key, (pbx, q)) for q in set(old) - set(starts) for key in _KEYS)
            at = [bisect_left(queue, q, off, end) for q in starts[1:]]
            bounds = list(zip([off, *at], [*at, end], strict=True))
        out += [((pbx, q), s, e) for q, (s, e) in zip(starts, bounds, strict=True)]
        off = end
    return out


def _layout(queue: list[str], off: int, end: int) -> list[str]:
    """The first queues of blocks of about :data:`ROWS` rows of ``queue[off:end]``, each at a queue's first row (the
    first block's is "": it holds whatever sorts first)."""
    starts = [""]
    i = off
    while i + ROWS < end:
        if queue[i] == queue[i + ROWS]:  # one queue from row i on is larger than a block: the block is that queue
            j = bisect_right(queue, queue[i], i, end)
        else:  # the first row of the queue of row i + ROWS
            j = bisect_left(queue, queue[i + ROWS], i + 1, i + ROWS + 1)
        if j >= end:
            break
        starts.append(queue[j])
        i = j
    return starts


def _state_text(render: Renderer, block: tuple[str, str], p: _Prefixes, cur: list[str]) -> bytes:
    """The ``qmon_agent_state`` lines of a block's rows: the last scrape's, with the chunks of the rows whose state
    changed made again (a few per scrape)."""
    prev = render.memo(("agent_state", block), None, dict)
    if prev.get("p") is p and len(prev["cur"]) == len(cur):
        changed = list(map(ne, cur, prev["cur"]))
        if True not in changed:
            return cast(bytes, prev["text"])
        chunks = list(prev["chunks"])
        for i in compress(range(len(cur)), changed):
            chunks[i] = p.rows[i].chunk(cur[i])
    else:  # rows listed again (a member joined): their chunks are kept per row, looked up in C
        chunks = list(map(dict.get, map(_CHUNKS, p.rows), cur))
        if None in chunks:
            chunks = [t if t is not None else row.chunk(s) for t, row, s in zip(chunks, p.rows, cur, strict=True)]
    text = "".join(chunks).encode()
    prev.update(p=p, cur=tuple(cur), chunks=tuple(chunks), text=text)  # tuples: see exposition._Column
    return text


class _Prefixes:
    """The ``name{labels} `` of every per-agent series of one block's (pbx, queue, agent) rows (label names in
    generate_latest's sorted order: agent, pbx, queue, then reason or state). Each row's are made once, in ``made``
    (kept by the renderer). Tuples, made in C: the garbage collector does not walk a tuple of strings."""

    def __init__(self, pbxs: list[str], queues: list[str], agents: list[str], made: dict[Any, _Row]) -> None:
        keys = list(zip(pbxs, queues, agents, strict=True))
        rows: list[_Row | None] = list(map(made.get, keys))
        if None in rows:
            for i, key in enumerate(keys):
                if rows[i] is None:
                    rows[i] = made[key] = _Row(*key)
        self.rows = cast(tuple[_Row, ...], tuple(rows))
        self.state_s = tuple(chain.from_iterable(map(_STATE_S, self.rows)))
        self.talk, self.wrap, self.calls, self.done, self.rna, self.since, self.dur, self.occ = (
            tuple(zip(*map(_SINGLES_OF, self.rows), strict=True)) or ((),) * len(_SINGLES))
        self._paused: tuple[Any, tuple[str, ...]] | None = None  # the labels and prefixes of the last paused()

    def paused(self, labs: list[tuple[str, ...]], alike: bool) -> tuple[str, ...]:
        """The ``qmon_agent_paused_seconds_total`` prefixes of every row for its labels (``alike``: every row has
        the same), kept while the rows have the same labels."""
        key = labs[0] if alike and labs else labs
        if self._paused is not None and (self._paused[0] is key or self._paused[0] == key):
            return self._paused[1]
        each = list(map(dict.get, map(_PAUSED_OF, self.rows), labs))
        if None in each:
            each = [t if t is not None else row.paused_prefixes(ls)
                    for t, row, ls in zip(each, self.rows, labs, strict=True)]
        out = tuple(chain.from_iterable(cast(list[tuple[str, ...]], each)))
        self._paused = (key, out)
        return out


class _Row:
    """The prefixes of one (pbx, queue, agent)'s series, and its ``qmon_agent_state`` text per state."""

    __slots__ = ("base", "chunks", "paused", "singles", "state", "state_s")

    def __init__(self, pbx: str, queue: str, agent: str) -> None:
        v = label_value
        b = self.base = f'agent="{v(agent)}",pbx="{v(pbx)}",queue="{v(queue)}"'
        self.state_s = tuple(f'qmon_agent_state_seconds_total{{{b},state="{s}"}} ' for s in TIME_STATES)
        self.singles = tuple(f"{name}{{{b}}} " for name in _SINGLES)
        self.state = tuple(f'qmon_agent_state{{{b},state="{s}"}} ' for s in AGENT_STATES)
        self.chunks: dict[str, str] = {}
        self.paused: dict[tuple[str, ...], tuple[str, ...]] = {}

    def chunk(self, state: str) -> str:
        """The ``qmon_agent_state`` lines of this row in ``state`` (1.0 for it, 0.0 for the others)."""
        text = self.chunks.get(state)
        if text is None:
            text = self.chunks[state] = "".join(
                p + ("1.0\n" if s == state else "0.0\n") for p, s in zip(self.state, AGENT_STATES, strict=True))
        return text

    def paused_prefixes(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """This row's ``qmon_agent_paused_seconds_total`` prefix for each pause label (kept per labels)."""
        p = self.paused.get(labels)
        if p is None:
            p = self.paused[labels] = tuple(
                f'qmon_agent_paused_seconds_total{{{self.base},reason="{label_value(lab)}"}} ' for lab in labels)
        return p


#: What the renderer keeps per block (dropped with a block when the blocks are laid out again).
_KEYS = ("agents", "agent_state_s", "agent_paused", "talk", "wrap", "calls", "done", "rna", "agent_state",
         "agent_since", "agent_dur", "agent_occ")
_STATE_S = attrgetter("state_s")
_CHUNKS = attrgetter("chunks")
_PAUSED_OF = attrgetter("paused")
_SINGLES_OF = attrgetter("singles")
_SINGLES = ("qmon_agent_talk_seconds_total", "qmon_agent_wrapup_seconds_total", "qmon_agent_calls_total",
            "qmon_agent_completed_calls_total", "qmon_agent_ring_no_answer_total",
            "qmon_agent_state_since_timestamp_seconds", "qmon_agent_state_duration_seconds", "qmon_agent_occupancy")
