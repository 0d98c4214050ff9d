"""Progress a person can watch while ``trun`` runs a workflow.

A progress reporter is an object the worker feeds with events; the worker
keeps a list of them in ``worker.reporters`` and calls:

* ``on_scheduled(step, status, runnable)`` for every status it reports while
  scheduling (``PENDING``, ``DONE``, ``FAILED``, ``UNKNOWN``, ``DISABLED``);
* ``on_started(step)`` just before a step runs;
* ``on_finished(step, status)`` when a run ends (``DONE``, ``FAILED``, or
  ``PENDING`` when the step yielded new dynamic dependencies).

``reporter_for(stream)`` picks the right kind:

* ``TerminalProgress`` when ``stream`` is a terminal: one status line —
  steps done / running / pending / failed and the step running now — redrawn
  in place with ``\\r`` and "clear to end of line". Log records written to the
  same terminal first wipe the line, then it is drawn again below them, so log
  output and the status line never mix. ``close()`` wipes it for good, and the
  final execution summary takes its place.
* ``LogProgress`` otherwise (cron, CI, a pipe): one plain INFO line on the
  ``trun-interface`` logger each time a step finishes.

``trun --no-progress`` (``[core] no_progress``) attaches neither; nor is
``LogProgress`` attached when the ``trun-interface`` logger does not show INFO
lines at the start of the run (``--log-level WARNING``).

Hazards: ``TerminalProgress`` temporarily wraps the ``emit`` of logging handlers
that write to a terminal; always ``close()`` it (``trun.build`` does). Output a
step prints itself, bypassing logging, can land on the status line until the
next redraw.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["ProgressCounts", "ProgressReporter", "TerminalProgress", "LogProgress", "reporter_for"]

_CLEAR_LINE = "\r\x1b[K"

logger = logging.getLogger("trun-interface")


@dataclass(frozen=True)
class ProgressCounts:
    """How many of the steps seen so far are in each state."""

    total: int = 0
    done: int = 0
    running: int = 0
    pending: int = 0
    failed: int = 0
    missing: int = 0  # pending on external data that no step here can produce
    disabled: int = 0

    def describe(self) -> str:
        """``"3/10 steps done, 1 running, 6 pending, 0 failed"`` (+ missing/disabled when non-zero)."""
        text = (f"{self.done}/{self.total} steps done, {self.running} running, "
                f"{self.pending} pending, {self.failed} failed")
        if self.missing:
            text += f", {self.missing} missing external"
        if self.disabled:
            text += f", {self.disabled} disabled"
        return text


_CATEGORIES = ("done", "running", "pending", "failed", "missing", "disabled")


def _category(status: str, runnable: bool) -> str:
    """Which counter of :class:`ProgressCounts` a step with ``status`` adds to."""
    if status == "DONE":
        return "done"
    if status in ("RUNNING", "BATCH_RUNNING"):
        return "running"
    if status in ("FAILED", "UNKNOWN"):
        return "failed"
    if status == "DISABLED":
        return "disabled"
    return "pending" if runnable else "missing"


# status -> _category(status, runnable), one dict per value of runnable: looked
# up for every event. Keys are the statuses as given (a StepStatus hashes and
# compares as its string) when they are str, else their str().
_category_memo: dict[bool, dict[Any, str]] = {True: {}, False: {}}


def _category_of(status: Any, runnable: bool) -> str:
    memo = _category_memo[runnable]
    category = memo.get(status)
    if category is None:
        if not isinstance(status, str):
            return _category(str(status), runnable)
        category = memo[status] = _category(status, runnable)
    return category


# Kinds of events waiting in a reporter's backlog.
_SCHEDULED, _STARTED, _FINISHED = range(3)

# Events applied to the counters at once, at the latest (see ProgressReporter._backlog).
_BACKLOG_LIMIT = 1000


class ProgressReporter:
    """Base reporter: keeps the latest status of each step; subclasses decide how to show it.

    Events are queued and applied to the counters when they are read
    (:meth:`counts`, :meth:`running_steps`), or every ``_BACKLOG_LIMIT``
    events: a reporter that shows nothing for most events pays little for them.
    """

    #: False when ``_changed`` ignores events other than ``on_finished`` (then not called for them).
    _changed_on_every_event = True

    def __init__(self) -> None:
        # key -> category (see _category) of the step's latest status.
        self._categories: dict[str, str] = {}
        # Keys whose latest report was not runnable (few): on_finished needs it.
        self._not_runnable: set[str] = set()
        self._running: dict[str, Any] = {}  # insertion order = start order
        # Counters kept as events arrive: recounting every step on each event would
        # make a run quadratic in its number of steps.
        self._tally: dict[str, int] = dict.fromkeys(_CATEGORIES, 0)
        # Events not applied to the state above yet, oldest first, as (kind, key,
        # step, status, runnable); see _catch_up. LogProgress reads the counters
        # only when a step finishes: the events of a graph walk in between are
        # applied in one pass each _BACKLOG_LIMIT of them.
        self._backlog: list[tuple[int, str, Any, Any, bool]] = []
        self._lock = threading.RLock()

    def _catch_up(self) -> None:
        """Apply the backlog of events to the state, in order."""
        with self._lock:
            backlog = self._backlog
            # Appends from other threads meanwhile land after `applied` and are kept.
            applied = len(backlog)
            if not applied:
                return
            categories = self._categories
            tally = self._tally
            running = self._running
            not_runnable = self._not_runnable
            memo = _category_memo
            taken = 0
            try:
                for kind, key, step, status, runnable in backlog[:applied]:
                    taken += 1
                    if kind == _STARTED:
                        category = "running"
                        running[key] = step
                    else:
                        if kind == _FINISHED:
                            runnable = key not in not_runnable
                        category = memo[runnable].get(status) or _category_of(status, runnable)
                        if running:
                            running.pop(key, None)
                    old = categories.get(key)
                    if old is not None:
                        tally[old] -= 1
                    categories[key] = category
                    tally[category] += 1
                    if not runnable:
                        not_runnable.add(key)
                    elif not_runnable:
                        not_runnable.discard(key)
            finally:
                # An event that raises (a status whose str() fails) goes too, unapplied,
                # as when events were applied on arrival: the next read does not fail again.
                del backlog[:taken]

    # -- events from the worker ---------------------------------------------------

    def on_scheduled(self, step: Any, status: Any, runnable: bool) -> None:
        """The worker reported ``step`` to the scheduler with ``status``."""
        backlog = self._backlog
        backlog.append((_SCHEDULED, getattr(step, "step_id", None) or str(step), step, status, bool(runnable)))
        if len(backlog) >= _BACKLOG_LIMIT:
            self._catch_up()
        if self._changed_on_every_event:
            self._changed(step, None)

    def on_started(self, step: Any) -> None:
        """``step`` is about to run."""
        backlog = self._backlog
        backlog.append((_STARTED, getattr(step, "step_id", None) or str(step), step, None, True))
        if len(backlog) >= _BACKLOG_LIMIT:
            self._catch_up()
        if self._changed_on_every_event:
            self._changed(step, None)

    def on_finished(self, step: Any, status: Any) -> None:
        """``step`` stopped running with ``status``."""
        backlog = self._backlog
        backlog.append((_FINISHED, getattr(step, "step_id", None) or str(step), step, status, True))
        if len(backlog) >= _BACKLOG_LIMIT:
            self._catch_up()
        self._changed(step, str(status))

    def close(self) -> None:
        """The run is over; release anything the reporter holds."""

    def shows_anything(self) -> bool:
        """Whether what it reports would reach anyone now; a reporter that would not is not attached."""
        return True

    # -- state ---------------------------------------------------------------------

    def counts(self) -> ProgressCounts:
        """A snapshot of the counters."""
        with self._lock:
            self._catch_up()
            t = self._tally
            return ProgressCounts(len(self._categories), t["done"], t["running"], t["pending"], t["failed"],
                                  t["missing"], t["disabled"])

    def running_steps(self) -> list[Any]:
        """Steps running now, oldest first."""
        with self._lock:
            self._catch_up()
            return list(self._running.values())

    def _changed(self, step: Any, finished_status: str | None) -> None:
        """Hook called after every event (``finished_status`` is set for ``on_finished``)."""


class LogProgress(ProgressReporter):
    """Plain log lines for non-interactive output: one INFO line per finished step."""

    _changed_on_every_event = False

    def __init__(self, log: logging.Logger | None = None) -> None:
        super().__init__()
        self._log = log or logger

    def shows_anything(self) -> bool:
        """Whether its INFO lines would be written now (``trun.build`` attaches it only then)."""
        return self._log.isEnabledFor(logging.INFO)

    def _changed(self, step: Any, finished_status: str | None) -> None:
        if finished_status is None or not self._log.isEnabledFor(logging.INFO):
            return
        self._log.info("Progress: %s (%s %s)", self.counts().describe(), step, finished_status)


class TerminalProgress(ProgressReporter):
    """One live status line on a terminal, kept below any log output."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._pid = os.getpid()
        self._shown = False
        self._closed = False
        self._guarded: list[logging.Handler] = []
        self._guard_terminal_handlers()

    def status_line(self) -> str:
        """The text of the status line (without control characters)."""
        line = "trun: " + self.counts().describe()
        running = self.running_steps()
        if running:
            line += f" | running {running[-1]}"
            if len(running) > 1:
                line += f" (+{len(running) - 1} more)"
        return line

    def close(self) -> None:
        """Wipe the status line and give the logging handlers back their own ``emit``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wipe()
            for handler in self._guarded:
                handler.__dict__.pop("emit", None)
            self._guarded.clear()

    def _changed(self, step: Any, finished_status: str | None) -> None:
        with self._lock:
            if not self._closed:
                self._draw()

    def _draw(self) -> None:
        width = _terminal_width(self._stream)
        self._stream.write(_CLEAR_LINE + self.status_line()[: max(width - 1, 10)])
        self._stream.flush()
        self._shown = True

    def _wipe(self) -> None:
        if self._shown:
            self._stream.write(_CLEAR_LINE)
            self._stream.flush()
            self._shown = False

    def _guard_terminal_handlers(self) -> None:
        # A log line written while the status line is on screen would be glued
        # to it; wrap each terminal handler so it wipes the line first and the
        # line is drawn again under the new log output.
        for handler in _all_handlers():
            stream = getattr(handler, "stream", None)
            if stream is None or "emit" in handler.__dict__ or not _isatty(stream):
                continue
            handler.emit = self._guarded_emit(handler.emit)  # type: ignore[method-assign]
            self._guarded.append(handler)

    def _guarded_emit(self, emit: Any) -> Any:
        def emit_below_status_line(record: logging.LogRecord) -> None:
            if os.getpid() != self._pid:
                # A forked step process: its copy of the counters is stale, so
                # only make room for the record; the parent redraws on its next event.
                self._stream.write(_CLEAR_LINE)
                emit(record)
                return
            with self._lock:
                was_shown = self._shown
                self._wipe()
                emit(record)
                if was_shown and not self._closed:
                    self._draw()
        return emit_below_status_line


def reporter_for(stream: TextIO) -> ProgressReporter:
    """``TerminalProgress`` if ``stream`` is an interactive terminal, else ``LogProgress``."""
    if _isatty(stream) and os.environ.get("TERM", "") != "dumb":
        return TerminalProgress(stream)
    return LogProgress()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def _all_handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    seen: dict[int, logging.Handler] = {}
    for lg in loggers:
        for handler in lg.handlers:
            seen.setdefault(id(handler), handler)
    return list(seen.values())
