"""The survey server's own worker threads: qmon's lookups before the first prompt; the cooldown write after the
call has a pool of its own (a write stalled by a locked state file must not hold a lookup's thread).

Its own pool (not the loop's default executor, used by others), so a hung store starves only the surveys, which
then say goodbye after their work deadline (issue 12). Measured with 500 callers at once (``bench/load.py agi``):

* the threads are started with the server: the executor starts one on demand, and ``Thread.start`` waits for
  the new thread to run, which during a burst (the GIL busy) blocked the loop up to ~4 ms each time;
* at most one job per thread is handed over at a time, the others wait on the loop in arrival order. With a
  burst's hundred lookups queued, the workers ran through them holding the GIL (the loop waits for it up to the
  5 ms switch interval) and handed them back in one clump: a hundred first commands written in one loop turn,
  whose replies then queued behind each other (the round trip's p99 ~6 ms, ~2 ms with this bound).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class WorkerPool:
    """``workers`` threads named ``name``_N; :meth:`run` hands a job over once a thread is free."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._slots = asyncio.Semaphore(workers)  # jobs handed over (a timed-out one frees its slot at once)

    def start(self) -> None:
        """Start every thread now (blocks until they run; at start-up, not during a burst)."""
        gate = threading.Barrier(self.workers)  # held until all exist: none is idle, so each submit starts one
        for f in [self._pool.submit(gate.wait, 5.0) for _ in range(self.workers)]:
            try:
                f.result()
            except threading.BrokenBarrierError:  # a thread that did not start: the executor retries on demand
                pass

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a worker thread, after waiting for a free one; its exception is raised here."""
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        """Stop the threads once their current job ends; jobs not started are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)
