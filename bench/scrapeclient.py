"""The scraper of ``bench/load.py scrape``: /metrics fetched as Prometheus would, each scrape timed, and how many
of the members' duration lines moved since the previous body (every measured scrape must see them move, as a
15 s scrape interval would). Run as a process of its own (``bench/load.py scrapeclient``) or in a thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request

_DUR = b"# TYPE qmon_agent_state_duration_seconds gauge\n"


def _durations(body: bytes) -> list[bytes]:
    """The ``qmon_agent_state_duration_seconds`` lines of an exposition."""
    i = body.find(_DUR)
    if i < 0:
        return []
    i += len(_DUR)
    j = body.find(b"# HELP", i)
    return body[i:j if j >= 0 else len(body)].splitlines()


def _moved(prev: list[bytes], cur: list[bytes]) -> float:
    """The share (0..1) of the duration lines of ``cur`` that differ from ``prev`` (1.0 when the series changed)."""
    if not cur:
        return 0.0
    if len(prev) != len(cur):
        return 1.0
    return sum(map(bytes.__ne__, prev, cur)) / len(cur)


def scrape(port: int, stop: threading.Event, times: list[float], moved: list[float], n: int,
             interval_s: float = 1.0, prev: list[bytes] | None = None) -> list[bytes] | None:
    """Scrape /metrics ``n`` times, ``interval_s`` apart (a pause after each), as Prometheus would: the scrape
    seconds into ``times``, and into ``moved`` the share of member duration lines that changed since the previous
    body (``prev``: the duration lines of the body before the first). Returns the last body's duration lines."""
    for _ in range(n):
        if stop.is_set():
            break
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            body = r.read()
        times.append(time.perf_counter() - t)
        cur = _durations(body)
        if prev is not None:
            moved.append(_moved(prev, cur))
        prev = cur
        stop.wait(interval_s)
    return prev


def scraper_main(args: argparse.Namespace) -> None:
    """The scraper as a process of its own, as a Prometheus server is (``--scraper process``): the warm-up scrape,
    its seconds as a JSON line; then, once a line arrives on stdin, the measured scrapes, a JSON line of
    {"times": [...], "moved": [...]}."""
    warm: list[float] = []
    prev = scrape(args.port, threading.Event(), warm, [], 1, 0.0)
    print(json.dumps(warm), flush=True)
    sys.stdin.readline()
    times: list[float] = []
    moved: list[float] = []
    scrape(args.port, threading.Event(), times, moved, args.scrapes, args.scrape_interval_s, prev)
    print(json.dumps({"times": times, "moved": moved}), flush=True)
