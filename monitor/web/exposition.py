"""The Prometheus text exposition of qmon's families, written fast: byte for byte what prometheus-client's
``generate_latest`` writes (the library stays the registry and the reference; ``tests/test_exposition.py`` proves
the equality on a full daemon scrape and on generated families).

Why: at 200 queues x 50 members a scrape is ~250 k lines and the library formats each one from scratch (label
sorting and escaping, float formatting: ~7 us a line, ~2 s a scrape). Here the ``name{labels} `` prefix of a series
is made once and cached (queues and members are stable across scrapes), values go through a cache of their text,
and a column of values equal to the previous scrape's reuses its text. A :class:`Renderer` is not thread-safe:
hold :attr:`Renderer.lock` around a render.
"""

from __future__ import annotations

import functools
import itertools
import threading
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, attrgetter, is_, ne, setitem
from typing import Any, cast

from prometheus_client import Counter, Histogram, generate_latest
from prometheus_client import metrics as _lib_metrics
from prometheus_client import values as _lib_values
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import UNDERSCORES, escape_label_name, escape_metric_name

from monitor.web.gofloat import floatToGoString, go_texts, value_text

# The library's instruments are read through attributes it does not document (``_metrics``, ``_labelnames``,
# ``_value`` of a MutexValue, ``_buckets``, ``_sum``, ``_upper_bounds``): prometheus-client is pinned
# (scripts/constraints.txt) and tests/test_exposition.py compares every render with generate_latest's.

__all__ = ["ObservedHistogram", "Prerendered", "Renderer", "header", "label_value", "library_text", "series_prefix",
           "value_text"]

#: How generate_latest names and types a family in the text format (OpenMetrics types munged).
_MUNGE = {"counter": ("_total", "counter"), "info": ("_info", "gauge"), "stateset": ("", "gauge"),
          "gaugehistogram": ("", "histogram"), "unknown": ("", "untyped")}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")  # samples generate_latest moves to a gauge family of their own
_ZERO = "0.0\n"
_NEG_ZERO = array("d", [-0.0]).tobytes()
_MAX_VALUES = 200_000  # cached value texts (durations change every scrape: the cache is cleared past this)
_NONES = itertools.repeat(None)
_RAW = attrgetter("_value")  # a MutexValue's float, read without its lock (a float read is atomic under the GIL)
_OBSERVED = attrgetter("observed")
_MAX_PREFIXES = 1_000_000  # cached series prefixes (bounded by queues x members x label values)


class ObservedHistogram(Histogram):
    """A prometheus-client Histogram whose series count their observations (``observed``): a render reads again only
    the series observed since the last one (the wait histogram is ~1 400 series, ~30 000 values to compare)."""

    observed = 0

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """The library's observe, then counted (after: a render that reads the count first never keeps a text of
        values newer than the count it stored)."""
        super().observe(amount, exemplar)
        self.observed += 1


class Prerendered(Metric):
    """Families as text, in parts made on demand (yielded by qmon's collectors only while a :class:`Renderer`
    renders: :meth:`Renderer.parts` hands the parts on one by one, so a render can pause between them)."""

    def __init__(self, name: str, parts: Iterable[bytes]) -> None:
        super().__init__(name, "", "unknown")
        self.parts = parts


@functools.lru_cache(maxsize=1024)
def header(name: str, documentation: str, typ: str) -> bytes:
    """The ``# HELP``/``# TYPE`` lines of a family as generate_latest writes them (counter -> ``_total``...)."""
    suffix, shown = _MUNGE.get(typ, ("", typ))
    mname = escape_metric_name(name + suffix, UNDERSCORES)
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {mname} {doc}\n# TYPE {mname} {shown}\n".encode()


def series_prefix(name: str, labels: Iterable[tuple[str, str]]) -> str:
    """``name{k="v",...} `` with the labels sorted and escaped as generate_latest does."""
    pairs = sorted(labels)
    if not pairs:
        return _metric_name(name) + " "
    inner = ",".join([f'{_label_name(k)}="{label_value(v)}"' for k, v in pairs])
    return f"{_metric_name(name)}{{{inner}}} "


@functools.lru_cache(maxsize=4096)
def _metric_name(name: str) -> str:
    return escape_metric_name(name, UNDERSCORES)


@functools.lru_cache(maxsize=4096)
def _label_name(name: str) -> str:
    return escape_label_name(name, UNDERSCORES)


@functools.lru_cache(maxsize=65536)
def label_value(value: str) -> str:
    """A label value escaped as in the text format (backslash, newline, double quote)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


class _One:
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> list[Metric]:
        return [self.metric]


def library_text(metric: Metric) -> bytes:
    """One family rendered by prometheus-client itself (the reference, and the path for unusual families)."""
    return bytes(generate_latest(_One(metric)))


def _has_negative_zero(values: Sequence[Any]) -> bool:
    """Whether a -0.0 is among ``values`` (equal to 0.0, so a cache keyed by value cannot tell it apart)."""
    try:
        raw = array("d", values).tobytes()
    except (TypeError, ValueError, OverflowError):  # not plain numbers: let the slow path decide
        return True
    i = raw.find(_NEG_ZERO)
    while i >= 0:
        if i % 8 == 0:
            return True
        i = raw.find(_NEG_ZERO, i + 1)
    return False


def _plain_values() -> bool:
    """Children hold plain in-process floats (not multiprocess files) and no ``_created`` series is written."""
    return _lib_values.ValueClass is _lib_values.MutexValue and not getattr(_lib_metrics, "_use_created", True)


@dataclass(slots=True)
class _Column:
    """A column's last render: its prefixes, values and lines (prefix + value text), its text, and whether a -0.0
    was among the values. Tuples: the garbage collector stops looking into a tuple of strings or floats (it
    untracks it), where every full collection would walk a list's ~50 000 items again (~10 ms a collection)."""

    prefixes: tuple[str, ...]
    values: tuple[Any, ...]
    lines: tuple[str, ...]
    text: bytes
    negative_zero: bool


class Renderer:
    """Caches of one registry's exposition: series prefixes, value texts, the text of unchanged columns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._values: dict[Any, str] = {0.0: _ZERO}
        self._prefixes: dict[tuple[str, Hashable], str] = {}
        self._columns: dict[Hashable, _Column] = {}
        self._memo: dict[Hashable, tuple[Any, Any]] = {}
        # id(child) -> (its labels, raw values, text, prefixes)
        self._hist: dict[int, tuple[tuple[tuple[str, str], ...], list[float], bytes, list[str]]] = {}
        # id(ObservedHistogram) -> (its labels, its series, each one's observation count and text, the text)
        self._observed: dict[int, tuple[list[tuple[tuple[str, str], ...]], tuple[Any, ...], list[int],
                                        tuple[bytes, ...], bytes]] = {}

    # -- values and prefixes -------------------------------------------------------------------------------------

    def texts(self, values: Sequence[Any], negative_zero: bool | None = None) -> list[str]:
        """``value_text(v)`` of every value (through the cache; a -0.0 or an unhashable value takes the slow path);
        ``negative_zero``: whether a -0.0 is among them, when the caller knows."""
        cache = self._values
        try:
            out = list(map(cache.__getitem__, values))
        except (KeyError, TypeError):
            try:
                missing = [v for v in dict.fromkeys(values) if v not in cache]
            except TypeError:
                return [value_text(v) for v in values]
            if len(cache) + len(missing) > _MAX_VALUES:
                cache.clear()
                cache[0.0] = _ZERO
                missing = [v for v in dict.fromkeys(values) if v not in cache]
            for v in missing:  # never a zero: 0.0 is always cached, and every zero equals it
                cache[v] = value_text(v)
            out = list(map(cache.__getitem__, values))
        if negative_zero is None:
            negative_zero = _ZERO in out and _has_negative_zero(values)
        if negative_zero:
            out = [value_text(v) if v == 0 else s for v, s in zip(values, out, strict=True)]
        return out

    def fresh(self, values: Sequence[Any]) -> list[str]:
        """``value_text(v)`` of each value, floats formatted in C (:func:`go_texts`): for values that moved (the
        cache of :meth:`texts` would only fill up with them)."""
        return go_texts(values) or self.texts(values)

    def prefix(self, name: str, labels: tuple[tuple[str, str], ...]) -> str:
        """:func:`series_prefix`, cached by (name, labels)."""
        key = (name, labels)
        p = self._prefixes.get(key)
        if p is None:
            if len(self._prefixes) >= _MAX_PREFIXES:
                self._prefixes.clear()
            p = self._prefixes[key] = series_prefix(name, labels)
        return p

    def lines(self, prefixes: Sequence[str], values: Sequence[Any], negative_zero: bool | None = None) -> bytes:
        """One line per (prefix, value), UTF-8."""
        return "".join(map(add, prefixes, self.texts(values, negative_zero))).encode()

    def column(self, key: Hashable, prefixes: Sequence[str], values: Sequence[Any], signed: bool = True,
               texts: Sequence[str | None] | None = None) -> bytes:
        """:meth:`lines`, remembered under ``key``: against the same prefixes only the lines whose value changed
        since the last call are made again (durations and the current state's seconds move every scrape, the rest
        seldom), and an unchanged column is its last text. ``signed=False``: the values cannot hold a -0.0 (the
        library's counters: 0.0 plus non-negative amounts). ``texts``: the caller's ``value_text`` of some values
        (None for the others), made once for values that several columns show."""
        if type(prefixes) is not tuple:
            prefixes = tuple(prefixes)
        negative_zero = signed and 0 in values and _has_negative_zero(values)  # equal to 0.0, printed apart
        prev = self._columns.get(key)
        lines: Sequence[str]
        kept = tuple(values)
        if (prev is not None and not negative_zero and not prev.negative_zero and len(prev.values) == len(values)
                and (prev.prefixes is prefixes or prev.prefixes == prefixes)):
            if kept == prev.values:  # in C, each value first by identity (a count untouched is the same object)
                return prev.text
            changed = list(map(ne, kept, prev.values))
            n = changed.count(True)
            if not n:
                return prev.text
            if 2 * n > len(values):  # most moved (durations): make them all
                lines = list(map(add, prefixes, self._made(values, texts)))
            else:
                lines = list(prev.lines)
                at = list(compress(range(len(values)), changed))
                fresh = self._made(list(compress(values, changed)),
                                   None if texts is None else list(compress(texts, changed)))
                deque(map(setitem, repeat(lines), at, map(add, map(prefixes.__getitem__, at), fresh)), 0)
        else:
            lines = list(map(add, prefixes, self.texts(values, True) if negative_zero else self._made(values, texts)))
        text = "".join(lines).encode()
        self._columns[key] = _Column(prefixes, kept, tuple(lines), text, negative_zero)
        return text

    def _made(self, values: Sequence[Any], texts: Sequence[str | None] | None) -> list[str]:
        """``value_text`` of each value: the given text, else formatted (:meth:`fresh`)."""
        if texts is None:
            return self.fresh(values)
        missing = list(map(is_, texts, _NONES))
        if True not in missing:
            return cast(list[str], list(texts))
        out = list(texts)
        made = self.fresh(list(compress(values, missing)))
        deque(map(setitem, repeat(out), compress(range(len(out)), missing), made), 0)
        return cast(list[str], out)

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Drop what :meth:`column` and :meth:`memo` keep under ``keys`` (columns that will not be written again)."""
        for key in keys:
            self._columns.pop(key, None)
            self._memo.pop(key, None)

    def memo(self, key: Hashable, arg: Any, build: Callable[[], Any]) -> Any:
        """``build()``, or what it returned last time under ``key`` if ``arg`` equals that time's."""
        prev = self._memo.get(key)
        if prev is not None and (prev[0] is arg or prev[0] == arg):
            return prev[1]
        out = build()
        self._memo[key] = (arg, out)
        return out

    # -- families ------------------------------------------------------------------------------------------------

    def family(self, metric: Metric) -> bytes:
        """A collector's family: what ``generate_latest`` writes for it."""
        samples = metric.samples
        om = {metric.name + s for s in _OM_SUFFIXES}
        if any(s.timestamp is not None or s.name in om for s in samples):
            return library_text(metric)
        prefixes = [self.prefix(s.name, tuple(s.labels.items())) for s in samples]
        return header(metric.name, metric.documentation, metric.type) + self.lines(prefixes, [s.value for s in samples])

    def instrument(self, metric: Counter | Histogram) -> bytes:
        """A prometheus-client Counter or Histogram read from its children (no per-sample lock or Sample objects)."""
        kinds = (Counter, Histogram, ObservedHistogram)
        if type(metric) not in kinds or not _plain_values() or not metric._labelnames:
            return b"".join(library_text(m) for m in metric.collect())
        name = metric._name
        with metric._lock:  # the children dict changes when a series is created
            keys = list(metric._metrics)
            children: list[Any] = list(metric._metrics.values())
        names = metric._labelnames
        labels: list[tuple[tuple[str, str], ...]] = self.memo(("labels", id(metric)), keys, lambda: [
            tuple(zip(names, k, strict=True)) for k in keys])
        if isinstance(metric, Counter):
            prefixes = self.memo(("prefixes", id(metric)), labels, lambda: [  # a new queue: only its series are new
                self.prefix(name + "_total", lab) for lab in labels])
            values = list(map(_RAW, map(_RAW, children)))
            text = self.column(id(metric), prefixes, values, signed=False)
            return header(name, metric._documentation, "counter") + text
        head = header(name, metric._documentation, "histogram")
        if isinstance(metric, ObservedHistogram):  # the series observed since the last render are read again
            counts = list(map(_OBSERVED, children))
            series = tuple(children)  # kept: a series removed and made again is another object (never its id)
            seen = self._observed.get(id(metric))
            if seen is not None and seen[0] is labels and seen[1] == series:
                if seen[2] == counts:
                    return seen[4]
                texts = list(seen[3])
                for i in compress(range(len(counts)), map(ne, counts, seen[2])):
                    texts[i] = self._histogram_child(metric, name, labels[i], children[i])
            else:
                texts = [self._histogram_child(metric, name, lab, child)
                         for lab, child in zip(labels, children, strict=True)]
            text = head + b"".join(texts)
            self._observed[id(metric)] = (labels, series, counts, tuple(texts), text)
            return text
        # Every bucket and sum of every child in one list: a histogram nobody observed since the last scrape (most
        # of them, most scrapes) is its last text after one comparison.
        raw = [v for c in children for v in (*map(_RAW, c._buckets), c._sum._value)]
        prev = self._memo.get(("histogram", id(metric)))
        if prev is not None and prev[0][0] is labels and prev[0][1] == raw:
            return cast(bytes, prev[1])
        parts = [head]
        for lab, child in zip(labels, children, strict=True):
            parts.append(self._histogram_child(metric, name, lab, child))
        text = b"".join(parts)
        self._memo[("histogram", id(metric))] = ((labels, raw), text)
        return text

    def _histogram_child(self, metric: Histogram, name: str, labels: tuple[tuple[str, str], ...], child: Any) -> bytes:
        # Bucket counts and the sum start at 0.0 and only have amounts added: never a -0.0 (0.0 + -0.0 is 0.0).
        raw = list(map(_RAW, child._buckets))
        raw.append(child._sum._value)
        key = id(child)
        prev = self._hist.get(key)
        if prev is not None and prev[0] is not labels and prev[0] != labels:  # another child now at that id
            prev = None
        if prev is not None and prev[1] == raw:
            return prev[2]
        bounds = metric._upper_bounds
        if prev is not None:
            prefixes = prev[3]
        else:
            prefixes = [series_prefix(name + "_bucket", (*labels, ("le", floatToGoString(b)))) for b in bounds]
            prefixes.append(series_prefix(name + "_count", labels))
            if bounds[0] >= 0:
                prefixes.append(series_prefix(name + "_sum", labels))
        acc = 0.0
        values: list[Any] = []
        for count in raw[:-1]:  # the library's own arithmetic: a float running sum
            acc += count
            values.append(acc)
        values.append(acc)
        if bounds[0] >= 0:
            values.append(raw[-1])
        text = self.lines(prefixes, values, negative_zero=False)
        self._hist[key] = (labels, raw, text, prefixes)
        return text

    def parts(self, families: Iterable[Metric]) -> Iterator[bytes]:
        """The exposition of ``families`` (a registry's ``collect()``) in parts: a family or a column each."""
        for metric in families:
            if isinstance(metric, Prerendered):
                yield from metric.parts
            else:
                yield self.family(metric)

    def render(self, families: Iterable[Metric]) -> bytes:
        """The whole exposition of ``families`` (a registry's ``collect()``), as generate_latest encodes it."""
        return b"".join(self.parts(families))
