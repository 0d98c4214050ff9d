"""The processes and threads a worker uses besides its own: fork or spawn, pinging, pooled checks.

* :func:`choose_mp_context` picks how to start child processes right now:
  ``fork`` when this process has no other thread, else ``spawn``. Forking a
  process with threads copies whatever locks those threads hold into the
  child, where nobody will ever release them (Python 3.12 warns about it,
  3.14 stopped defaulting to fork on Linux).
* :class:`PingThread` pings the scheduler while a step runs inside the
  worker's own process. The worker stops it before it forks anything.
* :class:`SerialChecker` and :class:`PoolChecker` check ``complete()`` for
  :meth:`trun.worker.Worker.add`: inline, or in a ``ProcessPoolExecutor``
  (``parallel_scheduling``). The pool forks all its processes before it
  starts its own management thread, so it never forks with a thread alive.
* :class:`BackgroundSender` sends a batch of reports to a remote scheduler
  from a short-lived thread, while the worker goes on walking the graph.
* :class:`GcPacer` keeps Python's cyclic garbage collector from scanning the
  whole step graph again and again while ``add()``/``run()`` handle a big one
  (with 100,000 steps a full collection takes a good part of a second, and
  the collector runs one each time the number of objects grew by a quarter).

Hazards: with ``spawn`` (and always in the pool) steps cross a process
boundary by pickling, so their classes must be importable at module level.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import logging
import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_for_futures
from typing import Any

from trun.step import Step
from trun.step_process import check_complete_cached

__all__ = ["BackgroundSender", "GcPacer", "PingThread", "PoolChecker", "SerialChecker", "TracebackWrapper", "check_complete_or_traceback",
           "choose_mp_context"]

logger = logging.getLogger("trun-interface")

# The oldest generation: the one a full collection collects.
_OLDEST_GENERATION = 2


class GcPacer:
    """Freezes (``gc.freeze()``) the objects that survived so far, now and every ``every`` steps.

    Used as a context manager around ``Worker.add()``/``Worker.run()``; call
    :meth:`tick` once per step handled. Frozen objects are left out of cyclic
    collections (reference counting still frees them), so the collector only
    looks at what is new. On the way out of the outermost use, everything is
    unfrozen again, and cyclic garbage made meanwhile is collected as usual.

    With ``after_full_collections``, what survived each full collection is
    frozen too. Meant for graph walks: one ``requires()`` may create 100,000
    steps between two ticks, and with most objects frozen the collector runs a
    full collection every 70,000 or so new objects, each scanning again all
    those made since the last tick (quadratic in the size of one fan-in). Not
    while steps run: the live objects of a long step would be frozen with it,
    and whatever cyclic garbage they later become kept until the end of the run.

    Hazard: ``gc.freeze`` is process-wide. When something else froze objects
    already (an outer worker, or the program itself, e.g. before forking), this
    pacer does nothing, so it never unfreezes what it did not freeze.
    """

    def __init__(self, every: int = 1000, after_full_collections: bool = False) -> None:
        self.every = every
        self.after_full_collections = after_full_collections
        self._owner = False
        self._depth = 0
        self._left = every

    def __enter__(self) -> GcPacer:
        if self._depth == 0:
            self._owner = gc.isenabled() and gc.get_freeze_count() == 0
            if self._owner:
                gc.freeze()
                self._left = self.every
                if self.after_full_collections:
                    gc.callbacks.append(self._freeze_after_full_collection)
        self._depth += 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._owner:
            self._owner = False
            if self.after_full_collections:
                with contextlib.suppress(ValueError):  # someone emptied gc.callbacks meanwhile
                    gc.callbacks.remove(self._freeze_after_full_collection)
            gc.unfreeze()

    @property
    def active(self) -> bool:
        """True inside a ``with`` block of this pacer."""
        return self._depth > 0

    def tick(self) -> None:
        """Count one step; freeze what survived every ``every`` steps."""
        self._left -= 1
        if self._left <= 0:
            self._left = self.every
            if self._owner:
                gc.freeze()

    def _freeze_after_full_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == _OLDEST_GENERATION and self._owner:
            gc.freeze()


def choose_mp_context() -> tuple[Any, list[str]]:
    """``(context, names of other live threads)``: fork if none are alive (and fork exists), else spawn."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn"), []
    current = threading.current_thread()
    others = [t.name for t in threading.enumerate() if t is not current and t.is_alive()]
    return multiprocessing.get_context("spawn" if others else "fork"), others


class PingThread(threading.Thread):
    """Calls ``ping()`` every ``interval`` seconds until :meth:`stop`; a daemon, so it never blocks exit."""

    def __init__(self, ping: Callable[[], None], interval: float) -> None:
        super().__init__(name="trun-worker-ping", daemon=True)
        self._ping = ping
        self._interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self._ping()

    def stop(self) -> None:
        """Stop pinging and wait until the thread has ended."""
        self._stop_event.set()
        self.join()


class BackgroundSender:
    """Runs ``send(batch)`` in a thread of its own, one batch at a time, in order.

    :meth:`send` first waits for the batch before it (so batches arrive in
    the order they were given), then starts a thread for this one and
    returns. :meth:`wait` returns once no batch is in flight, raising what the
    last one raised. No thread outlives :meth:`wait`: call it before forking,
    and before anything that must see every batch applied.
    """

    def __init__(self, send: Callable[[Any], None]) -> None:
        self._send = send
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def busy(self) -> bool:
        """True while a batch may still be in flight (until :meth:`wait`)."""
        return self._thread is not None

    def send(self, batch: Any) -> None:
        """Wait for the batch before, then send ``batch`` from a new thread."""
        self.wait()
        thread = threading.Thread(target=self._run, args=(batch,), name="trun-report-sender", daemon=True)
        self._thread = thread
        thread.start()

    def wait(self) -> None:
        """Wait until no batch is in flight; raise the exception of a batch that failed."""
        thread = self._thread
        if thread is None:
            return
        thread.join()
        self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self, batch: Any) -> None:
        try:
            self._send(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits, which raises it
            self._error = exc


class TracebackWrapper:
    """A ``complete()`` that raised, as its formatted traceback (so that it can cross processes)."""

    def __init__(self, trace: str) -> None:
        self.trace = trace


def check_complete_or_traceback(step: Step, completion_cache: dict[str, bool] | None = None) -> Any:
    """``step.complete()``, or a :class:`TracebackWrapper` if it raised."""
    try:
        return check_complete_cached(step, completion_cache)
    except Exception:
        return TracebackWrapper(traceback.format_exc())


class SerialChecker:
    """Checks ``complete()`` in this process, at the moment a step is discovered; answers first in, first out."""

    def __init__(self, completion_cache: dict[str, bool] | None) -> None:
        self._cache = completion_cache
        self._ready: collections.deque[tuple[Step, Any]] = collections.deque()

    def submit(self, step: Step) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Checking if %s is complete", step)
        # check_complete_or_traceback, inlined: this runs once for every step of the graph.
        cache = self._cache
        try:
            if cache is not None and cache.get(step.step_id):
                is_complete: Any = True
            else:
                is_complete = step.complete()
                if cache is not None and is_complete is True:
                    cache[step.step_id] = True
        except Exception:
            is_complete = TracebackWrapper(traceback.format_exc())
        self._ready.append((step, is_complete))

    def next_result(self) -> tuple[Step, Any]:
        """The next ``(step, complete() answer)``; FIFO, so the walk is breadth-first."""
        return self._ready.popleft()

    def close(self) -> None:
        pass


class PoolChecker:
    """Checks ``complete()`` in a pool of ``processes`` processes (0: one per CPU); answers as they come."""

    def __init__(self, mp_context: Any, processes: int, completion_cache: dict[str, bool] | None) -> None:
        self._pool = ProcessPoolExecutor(max_workers=processes or os.cpu_count() or 1, mp_context=mp_context)
        self._cache = completion_cache
        self._futures: dict[Future[Any], Step] = {}
        self._ready: collections.deque[tuple[Step, Any]] = collections.deque()

    def submit(self, step: Step) -> None:
        if self._cache is not None and self._cache.get(step.step_id):
            self._ready.append((step, True))
            return
        try:
            self._futures[self._pool.submit(check_complete_or_traceback, step)] = step
        except Exception:  # a broken pool (a check killed its process) refuses new work
            self._ready.append((step, TracebackWrapper(traceback.format_exc())))

    def next_result(self) -> tuple[Step, Any]:
        """The next ``(step, complete() answer)`` to arrive, waiting for one if needed."""
        while not self._ready:
            done, _ = wait_for_futures(list(self._futures), return_when=FIRST_COMPLETED)
            for future in done:
                step = self._futures.pop(future)
                try:
                    is_complete = future.result()
                except Exception:  # e.g. the step or its answer could not be pickled
                    is_complete = TracebackWrapper(traceback.format_exc())
                if is_complete is True and self._cache is not None:
                    self._cache[step.step_id] = True
                self._ready.append((step, is_complete))
        return self._ready.popleft()

    def close(self) -> None:
        """Stop the pool's processes (after the checks under way)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
