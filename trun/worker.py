"""The worker: tells a scheduler about a graph of steps, then runs the steps it is given.

A :class:`Worker` talks to a scheduler — the in-process
:class:`trun.scheduler.Scheduler` or a :class:`trun.rpc.RemoteScheduler` for a
``trund`` — in two phases:

1. :meth:`Worker.add` walks the dependency graph of a step breadth-first (no
   recursion, so a chain of 100,000 steps is fine), checks ``complete()`` of
   every step once (in a process pool with ``parallel_scheduling``) and reports
   each one with a status: ``DONE``, ``PENDING`` (runnable or, for missing
   external data, not), ``UNKNOWN`` (``complete()``/``requires()`` broke, or
   ``[worker] step_limit`` reached) or ``DISABLED``. Reports are sent in bulk
   (``add_steps``) when the scheduler offers it.
2. :meth:`Worker.run` asks the scheduler for work until none is left (or, with
   ``keep_alive``, for as long as other workers may still produce some), runs
   each step it gets (see :mod:`trun.step_process`) and reports the result.
   With a ``trund``, a result travels with the next ``get_work`` request
   (its ``reports`` argument): one round trip per step instead of two.

``[worker]`` configuration (class :class:`worker`) sets the defaults; keyword
arguments to ``Worker(...)`` override them, e.g. ``Worker(keep_alive=True)``.

Processes and threads — a deliberate design (hazard for the curious):

* With one worker process and no timeout, steps run **in this process** and a
  small daemon thread pings the scheduler while a step runs (and while ``add()``
  checks ``complete()``, which may be slow). Nothing is forked.
* With ``worker_processes > 1``, a timeout (``[worker] timeout`` or
  ``Step.worker_timeout``) or ``force_multiprocessing``, each step runs in a
  **child process**. The worker then pings from its own loop, which waits on
  the children's pipes for at most ``ping_interval``: no thread of ours exists
  when a child is forked (the ping thread, if it ran, is stopped first).
* Children are made with ``multiprocessing.get_context("fork")``. If other
  threads are alive at that moment (your program started them), forking could
  copy a held lock into the child, so the worker uses ``spawn`` instead and
  logs why; steps must then be importable and picklable.
* ``parallel_scheduling`` checks ``complete()`` in a process pool started the
  same way.

Other hazards: ``SIGUSR1`` makes the worker stop asking for work and finish
what runs (unless ``no_install_shutdown_handler``); the handler can only be
installed from the main thread. Event handlers for ``START``/``SUCCESS``/
``FAILURE``/``PROCESSING_TIME`` run in the process that runs the step.

Per-step cost: what a report says about a step's class (family, module,
retry policy, owners, parameter visibilities...) is worked out once per
class when the class keeps :class:`Step`'s own definitions (``_ReportFacts``),
and some values (the retry policy and visibility dicts) are then the same
object in every report of that class: a scheduler must copy, not change,
what it keeps from a report (trun's does).
"""
from __future__ import annotations

import collections
import contextlib
import datetime
import getpass
import importlib
import inspect
import json
import logging
import multiprocessing
import multiprocessing.connection
import operator
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from trun import parameter
from trun.event import Event
from trun.scheduler import StepReport
from trun.step import _MANY, Config, Register, Step, _all_steps, _class_facts, _no_event_handlers, validate_requirement
from trun.step_process import (
    EXIT_GRACE_SECONDS,
    REPORTER_METHODS,
    SchedulerMessage,
    SchedulerMessageQueue,
    StepException,
    StepProcess,
    StepResult,
    StepStatusReporter,
    is_external,
)
from trun.step_register import load_step
from trun.step_status import DISABLED, DONE, FAILED, PENDING, RUNNING, UNKNOWN, StepStatus
from trun.target import Target
from trun.worker_processes import (
    BackgroundSender,
    GcPacer,
    PingThread,
    PoolChecker,
    SerialChecker,
    TracebackWrapper,
    choose_mp_context,
)

__all__ = [
    "GetWorkResponse",
    "SchedulerMessage",
    "StepException",
    "StepProcess",
    "StepStatusReporter",
    "Worker",
    "rpc_message_callback",
    "worker",
]

logger = logging.getLogger("trun-interface")

WORKER_STATE_ACTIVE = "active"
WORKER_STATE_DISABLED = "disabled"

# Smallest wait_interval accepted: waiting on a queue or pipe for 0 seconds is
# a busy loop, and Luigi configurations rely on this bound.
_WAIT_INTERVAL_EPS = 0.00001

# Scheduling reports are sent in bulk; a batch goes out when it is this big or
# this old, so that the scheduler keeps hearing from a worker whose complete()
# checks are slow.
_ADD_BATCH_SIZE = 500
_ADD_BATCH_SECONDS = 1.0


class worker(Config):
    """``[worker]`` settings; each one can also be passed to ``Worker(...)`` as a keyword argument."""

    id = parameter.Parameter(default="", description="Override the generated worker id")
    ping_interval = parameter.FloatParameter(
        default=1.0, config_path=dict(section="core", name="worker-ping-interval"),
        description="Seconds between keep-alive pings to the scheduler")
    keep_alive = parameter.BoolParameter(
        default=False, config_path=dict(section="core", name="worker-keep-alive"),
        description="Stay alive while steps are pending, waiting for other workers to unblock them")
    count_uniques = parameter.BoolParameter(
        default=False, config_path=dict(section="core", name="worker-count-uniques"),
        description="With keep_alive, stay alive only while a pending step is unique to this worker")
    count_last_scheduled = parameter.BoolParameter(
        default=False,
        description="With keep_alive, stay alive only while pending steps were last scheduled by this worker")
    wait_interval = parameter.FloatParameter(
        default=1.0, config_path=dict(section="core", name="worker-wait-interval"),
        description="Seconds to wait between asking for work when there is none")
    wait_jitter = parameter.FloatParameter(
        default=5.0, description="Up to this many random extra seconds added to wait_interval")
    max_keep_alive_idle_duration = parameter.TimeDeltaParameter(
        default=datetime.timedelta(0),
        description="With keep_alive, give up after idling this long (0: never)")
    max_reschedules = parameter.IntParameter(
        default=1, config_path=dict(section="core", name="worker-max-reschedules"),
        description="How often a step whose dependencies vanished before it ran is scheduled again")
    timeout = parameter.FloatParameter(
        default=0, config_path=dict(section="core", name="worker-timeout"),
        description="Seconds a step may run before it is terminated (0: no limit); forces a subprocess")
    step_limit = parameter.OptionalIntParameter(
        default=None, config_path=dict(section="core", name="worker-step-limit"),
        description="Schedule at most this many steps per invocation")
    retry_external_steps = parameter.BoolParameter(
        default=False, config_path=dict(section="core", name="retry-external-steps"),
        description="Check incomplete external steps again while trun runs")
    send_failure_email = parameter.BoolParameter(
        default=True, description="Send e-mails from the worker when a step fails or cannot be scheduled")
    no_install_shutdown_handler = parameter.BoolParameter(
        default=False, description="Do not install the SIGUSR1 handler that stops the worker asking for work")
    check_unfulfilled_deps = parameter.BoolParameter(
        default=True, description="Check that dependencies are complete just before running a step")
    check_complete_on_run = parameter.BoolParameter(
        default=False, description="Fail a step whose complete() is still false after run() returned")
    force_multiprocessing = parameter.BoolParameter(
        default=False, description="Run steps in a subprocess even with one worker process")
    step_process_context = parameter.OptionalParameter(
        default=None,
        description="Dotted name of a class used as a context manager around each step run "
                    "(instantiated with the StepProcess)")
    cache_step_completion = parameter.BoolParameter(
        default=False, description="Remember positive complete() results for the rest of the run")


_F = TypeVar("_F", bound=Callable[..., Any])


def rpc_message_callback(fn: _F) -> _F:
    """Mark a :class:`Worker` method as callable by the scheduler through ``ping``'s ``rpc_messages``."""
    fn.is_rpc_message_callback = True  # type: ignore[attr-defined]
    return fn


class GetWorkResponse(NamedTuple):
    """The parts of a ``get_work`` answer the worker acts on."""

    step_id: str | None
    running_steps: list[dict[str, Any]] | tuple[()]
    n_pending_steps: int
    n_unique_pending: int
    n_pending_last_scheduled: int
    worker_state: str


_new_tuple = tuple.__new__
# The owners of a step class without owner e-mails (reports only read it).
_NO_OWNERS: tuple[str, ...] = ()
_step_id_of = operator.attrgetter("step_id")


class ReportHistory:
    """Every ``(step, status, runnable)`` a worker reported, in order, read like a list of such triples.

    Stored as two lists, the steps and the index of their ``(status,
    runnable)`` pair in a small table of the pairs seen: 16 bytes a report
    instead of a 3-tuple's 80, two reports a step. The worker writes with
    :meth:`record`; the execution summary reads it.
    """

    __slots__ = ("steps", "kinds", "_pairs", "_pair_ids")

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.kinds: list[int] = []
        self._pairs: list[tuple[Any, bool | None]] = []
        self._pair_ids: dict[tuple[Any, bool | None], int] = {}

    def record(self, step: Step, status: Any, runnable: bool | None) -> None:
        """Record one report."""
        pair = (status, runnable)
        kind = self._pair_ids.get(pair)
        if kind is None:
            kind = self._pair_ids[pair] = len(self._pairs)
            self._pairs.append(pair)
        self.steps.append(step)
        self.kinds.append(kind)

    def append(self, report: tuple[Step, Any, bool | None]) -> None:
        """Record one ``(step, status, runnable)`` (what a list of triples would take)."""
        self.record(*report)

    def copy(self) -> ReportHistory:
        """A copy that later reports leave as it is.

        Cheaper than ``list(history)``: that makes a triple per report, and
        making 200,000 objects at once sets off a full garbage collection of
        everything the run holds.
        """
        new = ReportHistory()
        new.steps = self.steps.copy()
        new.kinds = self.kinds.copy()
        new._pairs = self._pairs.copy()
        new._pair_ids = self._pair_ids.copy()
        return new

    def columns(self) -> tuple[list[Step], list[Any]]:
        """The reported steps and their statuses, as two lists in report order (made in C, no triples)."""
        status_of_kind = [status for status, _ in self._pairs]
        return self.steps, list(map(status_of_kind.__getitem__, self.kinds))

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[tuple[Step, Any, bool | None]]:
        # (step,) + (status, runnable), made in C: a generator costs more than twice as much.
        return map(operator.add, zip(self.steps), map(self._pairs.__getitem__, self.kinds))

    def __getitem__(self, index: int) -> tuple[Step, Any, bool | None]:
        return (self.steps[index], *self._pairs[self.kinds[index]])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ReportHistory, list)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ReportHistory({list(self)!r})"


def _retry_policy_dict(step: Step) -> dict[str, Any]:
    return {"retry_count": step.retry_count, "disable_hard_timeout": step.disable_hard_timeout,
            "disable_window": step.disable_window}


_STEP_DEFINITIONS = Step.__dict__


def _uses_steps_own(cls: type, *names: str) -> bool:
    """True when ``cls`` inherits :class:`Step`'s own definition of each of ``names``."""
    return all(inspect.getattr_static(cls, name, None) is _STEP_DEFINITIONS[name] for name in names)


class _ReportFacts:
    """The parts of a step's reports that only depend on its class, when the class keeps Step's defaults.

    Learned once per class (see ``_report_facts``); ``None`` means "the class
    overrides it: ask each step". Plain attributes (``priority``,
    ``resources``, ``disabled``) are always read from the step, since an
    instance may shadow them.
    """

    __slots__ = ("family", "module", "retry_policy", "no_owners", "batchable", "accepts_messages",
                 "own_resources", "param_visibilities")

    def __init__(self, cls: type[Step]) -> None:
        self.family = (cls.get_step_family()
                       if _uses_steps_own(cls, "step_family", "get_step_family", "get_step_namespace") else None)
        self.module = cls.__module__ if _uses_steps_own(cls, "step_module") else None
        # Shared by every report of the class: schedulers copy what they keep.
        self.retry_policy = (
            {"retry_count": None, "disable_hard_timeout": None, "disable_window": None}
            if _uses_steps_own(cls, "retry_count", "disable_hard_timeout", "disable_window",
                               "disable_window_seconds") else None)
        self.no_owners = _uses_steps_own(cls, "owner_email", "_owner_list")
        self.batchable = (bool(cls.batch_param_names())
                          if _uses_steps_own(cls, "batchable", "batch_param_names") else None)
        self.accepts_messages = False if _uses_steps_own(cls, "accepts_messages") else None
        self.own_resources = _uses_steps_own(cls, "process_resources")
        self.param_visibilities: dict[str, Any] | None = None  # from the first step with parameters


def _report_facts(step: Step) -> _ReportFacts:
    cls = type(step)
    facts = cls._trun_facts  # _class_facts(cls), inlined: this runs for every report
    if facts is None or facts.owner is not cls:
        facts = _class_facts(cls)
    report_facts = facts.get("worker.report")
    if report_facts is None:
        report_facts = facts["worker.report"] = _ReportFacts(cls)
    return report_facts


def _notifications() -> Any:
    """``trun.notifications`` if it can be imported, else None (e-mails are then skipped)."""
    try:
        return importlib.import_module("trun.notifications")
    except ImportError:
        logger.debug("trun.notifications is not available; not sending e-mails", exc_info=True)
        return None


class _SchedulerCalls:
    """The worker's scheduler behind the worker's lock, for calls a running step makes."""

    def __init__(self, owner: Worker) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._owner._scheduler, name)
        lock = self._owner._scheduler_lock

        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)
        return call


class Worker:
    """Schedules steps on a scheduler and runs the ones the scheduler hands back.

    ``scheduler`` defaults to a new in-process ``Scheduler(prune_on_get_work=True)``.
    ``worker_processes`` is how many steps run at once (each in a child process
    when more than one). ``assistant=True`` makes this worker run any runnable
    step the scheduler knows, importing step code by module name. Other keyword
    arguments override ``[worker]`` settings (see :class:`worker`).

    Use it as a context manager so that child processes are stopped on the way out::

        with Worker(scheduler=Scheduler(), worker_processes=2) as w:
            w.add(MyStep())
            ok = w.run()

    ``reporters`` is a list of progress reporters; each may have
    ``on_scheduled(step, status, runnable)``, ``on_started(step)`` and
    ``on_finished(step, status)``, called in this process.
    """

    def __init__(self, scheduler: Any = None, worker_id: str | None = None, worker_processes: int = 1,
                 assistant: bool = False, **kwargs: Any) -> None:
        if scheduler is None:
            from trun.scheduler import Scheduler
            scheduler = Scheduler(prune_on_get_work=True)

        self.worker_processes = int(worker_processes)
        self._worker_info = self._generate_worker_info()
        self._config = worker(**kwargs)
        if not self._config.wait_interval >= _WAIT_INTERVAL_EPS:
            raise ValueError(f"[worker] wait_interval must be at least {_WAIT_INTERVAL_EPS} seconds, "
                             f"got {self._config.wait_interval!r}")
        if not self._config.wait_jitter >= 0.0:
            raise ValueError(f"[worker] wait_jitter must be 0 or more seconds, got {self._config.wait_jitter!r}")

        self._id = (worker_id or self._config.id
                    or "Worker(%s)" % ", ".join(f"{k}={v}" for k, v in self._worker_info))
        self._scheduler = scheduler
        self._assistant = assistant
        self._stop_requesting_work = False
        self._keep_alive_enabled = self._config.keep_alive
        self.host = socket.gethostname()

        #: step id -> Step, for every step this worker reported or was given.
        self._scheduled_steps: dict[str, Step] = {}
        self._batch_running_steps: dict[str, list[Step]] = {}
        self._batch_families_sent: set[str] = set()
        self._first_step: str | None = None
        self._worker_added = False
        self.add_succeeded = True
        self.run_succeeded = True
        self.unfulfilled_counts: collections.defaultdict[str, int] = collections.defaultdict(int)
        self._step_completion_cache: dict[str, bool] | None = {} if self._config.cache_step_completion else None
        self._idle_since: datetime.datetime | None = None

        #: step id -> StepProcess for every step running now.
        self._running_steps: dict[str, StepProcess] = {}
        #: (deadline, process) of children that sent their result and may still be exiting.
        self._exiting_children: list[tuple[float, StepProcess]] = []
        self._finished_results: collections.deque[StepResult] = collections.deque()

        # Read by trun.execution_summary.
        self._add_step_history = ReportHistory()
        #: The ``get_work`` answers that gave no step (``step_id`` None, ``running_steps``).
        self._get_work_response_history: list[dict[str, Any]] = []

        #: Progress reporters (see the class docstring).
        self.reporters: list[Any] = []

        self._scheduler_lock = threading.RLock()
        self._scheduler_calls = _SchedulerCalls(self)
        self._ping_thread: PingThread | None = None
        self._next_ping = 0.0
        self._add_buffer: list[StepReport] | None = None
        self._add_buffer_since = 0.0
        self._spawn_reason_logged = False
        self._gc_pacer = GcPacer()
        self._walk_gc_pacer = GcPacer(after_full_collections=True)  # see GcPacer: not while steps run
        self._get_work_takes_reports: bool | None = None
        self._local_reports_method: Any = False  # False: not looked up yet (see _local_reports)
        # Full report buffers go to a remote scheduler from a thread while the walk goes on.
        self._report_sender = BackgroundSender(self._send_reports)
        self._sends_in_background: bool | None = None  # not looked up yet (see _flush_add_buffer)

        self._previous_sigusr1: Any = None
        if not self._config.no_install_shutdown_handler:
            try:
                self._previous_sigusr1 = signal.signal(signal.SIGUSR1, self.handle_interrupt)
            except (AttributeError, ValueError):
                # No SIGUSR1 (Windows), or not the main thread: run without the handler.
                logger.debug("Could not install the SIGUSR1 handler", exc_info=True)

    # -- context manager -----------------------------------------------------

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, tb: Any) -> bool:
        """Stop pinging, terminate steps still running in child processes, restore SIGUSR1."""
        self._stop_ping_thread()
        for step_process in list(self._running_steps.values()):
            if step_process.is_alive():
                step_process.terminate()
            step_process.close()
        self._reap_exited_children(wait=True)
        if self._previous_sigusr1 is not None:
            with contextlib.suppress(AttributeError, ValueError, TypeError):
                signal.signal(signal.SIGUSR1, self._previous_sigusr1)
            self._previous_sigusr1 = None
        return False

    def _generate_worker_info(self) -> list[tuple[str, Any]]:
        info: list[tuple[str, Any]] = [("salt", "%09d" % random.randrange(0, 999999999)),
                                       ("workers", self.worker_processes)]
        # Each of these may fail on some systems (no user name in a container, ...).
        with contextlib.suppress(Exception):
            info.append(("host", socket.gethostname()))
        with contextlib.suppress(Exception):
            info.append(("username", getpass.getuser()))
        with contextlib.suppress(Exception):
            info.append(("pid", os.getpid()))
        sudo_user = os.getenv("SUDO_USER")
        if sudo_user:
            info.append(("sudo_user", sudo_user))
        return info

    # -- talking to the scheduler ------------------------------------------------

    def _add_step(self, **kwargs: Any) -> None:
        """Report a step to the scheduler (buffered while ``add()`` runs) and record it."""
        step = self._scheduled_steps.get(kwargs["step_id"])
        if step is not None:
            kwargs["owners"] = step._owner_list()
            if kwargs.get("params"):
                kwargs["param_visibilities"] = self._param_visibilities_of(step, _report_facts(step))
        self._send_report(step, StepReport(**kwargs))

    def _send_report(self, step: Step | None, report: StepReport) -> None:
        """Record ``report`` in the history and send it (buffered while ``add()``/``run()`` run)."""
        step_id = report.step_id
        status = report.status
        if step is not None:
            self._add_step_history.record(step, status, report.runnable)
        if self._batch_running_steps:
            batch = self._batch_running_steps.pop(step_id, None)
            if batch:
                for batch_step in batch:
                    self._add_step_history.record(batch_step, status, True)
        buffer = self._add_buffer
        if buffer is not None:
            buffer.append(report)
            if len(buffer) >= _ADD_BATCH_SIZE or time.monotonic() - self._add_buffer_since >= _ADD_BATCH_SECONDS:
                self._flush_add_buffer(wait=False)
        else:
            self._report_sender.wait()  # after the reports before it
            with self._scheduler_lock:
                local = self._local_reports()
                if local is not None:
                    local(self._id, [report])
                else:
                    self._scheduler.add_step(worker=self._id, **report.kwargs())
        if logger.isEnabledFor(logging.INFO):
            logger.info("Informed scheduler that step   %s   has status   %s", step_id, status)

    def _flush_add_buffer(self, wait: bool = True) -> None:
        """Send the buffered reports; with ``wait``, return once every report sent so far is applied.

        Without ``wait``, a remote scheduler's batch is sent from a thread
        (:class:`BackgroundSender`) while the caller goes on: the worker walks
        the next part of the graph while the scheduler takes this one in.
        """
        buffered = self._add_buffer
        if buffered:
            self._add_buffer = []
            self._add_buffer_since = time.monotonic()
            local = self._local_reports()
            if local is not None:
                with self._scheduler_lock:
                    local(self._id, buffered)
            elif len(buffered) > 1 and self._sends_reports_in_background():
                self._report_sender.send(buffered)
            else:
                self._report_sender.wait()
                with self._scheduler_lock:
                    self._send_reports(buffered)
        if wait:
            self._report_sender.wait()

    def _send_reports(self, reports: list[StepReport]) -> None:
        """Reports to a scheduler other than the in-process one: one ``add_steps`` if it has it."""
        bulk = getattr(self._scheduler, "add_steps", None)
        if bulk is not None and len(reports) > 1:
            bulk(worker=self._id, steps=[report.kwargs() for report in reports])
        else:
            for report in reports:
                self._scheduler.add_step(worker=self._id, **report.kwargs())

    def _sends_reports_in_background(self) -> bool:
        """True for a remote scheduler: calls from several threads, each on its own connection."""
        background = self._sends_in_background
        if background is None:
            from trun.rpc import RemoteScheduler

            background = self._sends_in_background = isinstance(self._scheduler, RemoteScheduler)
        return background

    def _local_reports(self) -> Callable[[str, list[StepReport]], None] | None:
        """The in-process scheduler's trusted bulk report method, or None for any other scheduler.

        The worker's own reports need none of the argument checks meant for
        the wire; a subclass that overrides ``add_step``/``add_steps`` (to see
        or change reports) keeps getting them through those methods.
        """
        local = self._local_reports_method
        if local is False:
            from trun.scheduler import Scheduler

            cls = type(self._scheduler)
            local = None
            if (isinstance(self._scheduler, Scheduler) and cls.add_step is Scheduler.add_step
                    and cls.add_steps is Scheduler.add_steps):
                local = self._scheduler._add_local_reports
            self._local_reports_method = local
        return local

    def _scheduler_takes_reports(self) -> bool:
        """Whether ``get_work`` of our scheduler accepts ``reports`` (trun's, in process or remote)."""
        takes = self._get_work_takes_reports
        if takes is None:
            from trun.scheduler import Scheduler

            try:
                # In process there is no round trip to save, and add_step is the cheaper call.
                takes = (not isinstance(self._scheduler, Scheduler)
                         and "reports" in inspect.signature(self._scheduler.get_work).parameters)
            except (AttributeError, TypeError, ValueError):
                takes = False
            self._get_work_takes_reports = takes
        return takes

    def _call_get_work(self) -> dict[str, Any]:
        """``get_work``, carrying the buffered reports along when the scheduler allows (one round trip)."""
        self._report_sender.wait()  # a batch still in flight must be applied first
        reports = self._add_buffer
        if reports:
            local = self._local_reports()
            if local is not None:
                # _flush_add_buffer() for the in-process scheduler, whose lock the caller holds
                # (such a scheduler's get_work never takes reports: see _scheduler_takes_reports).
                self._add_buffer = []
                self._add_buffer_since = time.monotonic()
                local(self._id, reports)
            elif self._scheduler_takes_reports():
                self._add_buffer = []
                self._add_buffer_since = time.monotonic()
                return self._scheduler.get_work(worker=self._id, host=self.host, assistant=self._assistant,
                                                current_steps=list(self._running_steps),
                                                reports=[report.kwargs() for report in reports])
            else:
                self._flush_add_buffer()
        return self._scheduler.get_work(worker=self._id, host=self.host, assistant=self._assistant,
                                        current_steps=list(self._running_steps))

    @staticmethod
    def _param_visibilities_of(step: Step, facts: _ReportFacts) -> dict[str, Any]:
        # Visibilities depend only on the class: computed once per class.
        visibilities = facts.param_visibilities
        if visibilities is None:
            getter = getattr(step, "_get_param_visibilities", None)
            if getter is not None:
                visibilities = getter()
            else:
                private = parameter.ParameterVisibility.PRIVATE
                visibilities = {name: p.visibility.serialize() for name, p in step.get_params()
                                if p.visibility != private}
            facts.param_visibilities = visibilities
        return visibilities

    def _add_worker(self) -> None:
        if not self._worker_added:
            self._worker_info.append(("first_step", self._first_step))
            self._worker_added = True
        with self._scheduler_lock:
            self._scheduler.add_worker(worker=self._id, info=self._worker_info)

    def _ping(self) -> None:
        """Tell the scheduler we live; act on any ``rpc_messages`` in the answer. Never raises."""
        try:
            with self._scheduler_lock:
                response = self._scheduler.ping(worker=self._id)
        except Exception:
            logger.warning("Failed pinging scheduler", exc_info=True)
            return
        if isinstance(response, dict):
            for message in response.get("rpc_messages") or ():
                try:
                    self._handle_rpc_message(message)
                except Exception:
                    logger.exception("Worker %s failed to handle rpc message %r", self._id, message)

    def _ping_if_due(self) -> None:
        if self._ping_thread is not None:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self._next_ping = now + self._config.ping_interval
            self._ping()

    def _ensure_ping_thread(self) -> None:
        if self._ping_thread is None:
            self._ping_thread = PingThread(self._ping, self._config.ping_interval)
            self._ping_thread.start()

    def _stop_ping_thread(self) -> None:
        if self._ping_thread is not None:
            self._ping_thread.stop()
            self._ping_thread = None
            self._next_ping = time.monotonic() + self._config.ping_interval

    def _handle_rpc_message(self, message: dict[str, Any]) -> None:
        logger.info("Worker %s got message %s", self._id, message)
        name = message.get("name")
        kwargs = message.get("kwargs") or {}
        func = getattr(self, name, None) if isinstance(name, str) else None
        if not callable(func):
            logger.error("Worker %s has no function %r", self._id, name)
            return
        if not getattr(func, "is_rpc_message_callback", False):
            logger.error("Worker %s function %r is not available as rpc message callback", self._id, name)
            return
        try:
            inspect.signature(func).bind(**kwargs)
        except TypeError as ex:
            logger.error("Worker %s cannot call %r with %r: %s", self._id, name, kwargs, ex)
            return
        logger.info("Worker %s successfully dispatched rpc message to function %r", self._id, name)
        func(**kwargs)

    @rpc_message_callback
    def set_worker_processes(self, n: int) -> None:
        """Run up to ``n`` steps at once from now on (sent by the scheduler, e.g. from the UI)."""
        self.worker_processes = max(1, int(n))
        with self._scheduler_lock:
            self._scheduler.add_worker(worker=self._id, info={"workers": self.worker_processes})

    @rpc_message_callback
    def dispatch_scheduler_message(self, step_id: str, message_id: str, content: str, **kwargs: Any) -> None:
        """Hand a scheduler message to the running step ``step_id`` if it accepts messages."""
        step_id = str(step_id)
        step_process = self._running_steps.get(step_id)
        if step_process is None:
            logger.warning("Worker %s got a message for %s, which it is not running", self._id, step_id)
            return
        inbox = step_process.status_reporter.scheduler_messages
        if inbox is None:
            logger.warning("Step %s does not accept scheduler messages (set accepts_messages = True)", step_id)
            return
        inbox.put(SchedulerMessage(self._scheduler_calls, step_id, message_id, content, **kwargs))

    def _dispatch_child_call(self, name: str, kwargs: dict[str, Any]) -> None:
        """Make a scheduler call that a step running in a child process asked for."""
        if name not in REPORTER_METHODS:
            logger.warning("Ignoring call to %r from a step process: not a status reporter method", name)
            return
        try:
            with self._scheduler_lock:
                getattr(self._scheduler, name)(**kwargs)
        except AttributeError:
            logger.debug("The scheduler has no %s; ignoring the step's call", name)
        except Exception:
            logger.warning("Failed to forward %s(%r) to the scheduler", name, kwargs, exc_info=True)

    # -- e-mails and scheduling failures -----------------------------------------

    def _email_error(self, step: Step, formatted_traceback: str, subject: str, headline: str) -> None:
        notifications = _notifications()
        if notifications is None:
            return
        try:
            formatted_subject = subject.format(step=step, host=self.host)
            command = subprocess.list2cmdline(sys.argv)
            message = notifications.format_step_error(headline.format(step=step), step, command,
                                                      formatted_traceback)
            notifications.send_error_email(formatted_subject, message, step.owner_email)
        except Exception:
            logger.exception("Could not send the error e-mail about %s", step)

    def _announce_scheduling_failure(self, step: Step, expl: str) -> None:
        try:
            with self._scheduler_lock:
                self._scheduler.announce_scheduling_failure(
                    worker=self._id, step_name=str(step), family=step.step_family,
                    params=step.to_str_params(only_significant=True), expl=expl, owners=step._owner_list())
        except Exception:
            logger.warning("Could not tell the scheduler that %s failed scheduling", step, exc_info=True)

    def _email_complete_error(self, step: Step, formatted_traceback: str) -> None:
        self._announce_scheduling_failure(step, formatted_traceback)
        if self._config.send_failure_email:
            self._email_error(step, formatted_traceback,
                              subject="Trun: {step} failed scheduling. Host: {host}",
                              headline="Will not run {step} or any dependencies due to error in complete() method")

    def _email_dependency_error(self, step: Step, formatted_traceback: str) -> None:
        self._announce_scheduling_failure(step, formatted_traceback)
        if self._config.send_failure_email:
            self._email_error(step, formatted_traceback,
                              subject="Trun: {step} failed scheduling. Host: {host}",
                              headline="Will not run {step} or any dependencies due to error in deps() method")

    def _email_unexpected_error(self, step: Step, formatted_traceback: str) -> None:
        # Sent even with send_failure_email off: a framework error may escape
        # every other alerting path.
        self._email_error(step, formatted_traceback,
                          subject="Trun: Framework error while scheduling {step}. Host: {host}",
                          headline="Trun framework error")

    def _email_step_failure(self, step: Step, formatted_traceback: str) -> None:
        if self._config.send_failure_email:
            self._email_error(step, formatted_traceback,
                              subject="Trun: {step} FAILED. Host: {host}",
                              headline="A step failed when running. Most likely run() raised an exception.")

    def _handle_step_load_error(self, exception: BaseException, step_ids: Iterable[str]) -> None:
        step_ids = list(step_ids)
        msg = "Cannot find step(s) sent by scheduler: {}".format(",".join(step_ids))
        logger.exception(msg)
        notifications = _notifications()
        wrap = getattr(notifications, "wrap_traceback", None)
        error_message = wrap(exception) if wrap is not None else "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__))
        for step_id in step_ids:
            self._add_step(step_id=step_id, status=FAILED, runnable=False, expl=error_message)
        if notifications is not None:
            try:
                notifications.send_error_email(f"Trun: {msg}", error_message)
            except Exception:
                logger.exception("Could not send the error e-mail about %s", msg)

    # -- scheduling phase ----------------------------------------------------------

    def _validate_step(self, step: Any) -> None:
        if not isinstance(step, Step):
            hint = " Wrap the target in an ExternalStep." if isinstance(step, Target) else ""
            raise StepException(f"Can not schedule non-step {step!r}: Worker.add() takes a trun.Step.{hint}")
        initialized = getattr(step, "initialized", None)
        if initialized is not None and not initialized():
            raise StepException(
                f"Step of class {type(step).__name__} not initialized. "
                "Did you override __init__ and forget to call super().__init__(*args, **kwargs)?")

    def add(self, step: Step, multiprocess: bool = False, processes: int = 0) -> bool:
        """Schedule ``step`` and everything it needs; True if nothing went wrong while scheduling.

        With ``multiprocess`` (``[core] parallel_scheduling``), ``complete()`` is
        checked in a pool of ``processes`` processes (0: one per CPU); steps must
        then be picklable.
        """
        if self._first_step is None and hasattr(step, "step_id"):
            self._first_step = step.step_id
        self.add_succeeded = True
        self._validate_step(step)
        self._add_graph([step], multiprocess, processes)
        return self.add_succeeded

    def add_all(self, steps: Iterable[Step], multiprocess: bool = False, processes: int = 0) -> bool:
        """:meth:`add` each of ``steps`` in turn; True if nothing went wrong while scheduling any.

        One ping thread serves the whole series (each :meth:`add` would start
        and stop its own: ~0.1 ms per root, which is most of the cost of
        re-running a range of 100,000 complete steps).
        """
        started = not multiprocess and self._ping_thread is None
        if started:
            self._ensure_ping_thread()
        try:
            # One report buffer too: each add() would send its own (one request
            # per root to a remote scheduler).
            with self._buffered_reports():
                succeeded = True
                for step in steps:
                    succeeded &= bool(self.add(step, multiprocess, processes))
                return succeeded
        finally:
            if started:
                self._stop_ping_thread()

    @contextlib.contextmanager
    def _buffered_reports(self) -> Iterator[None]:
        """Buffer reports to the scheduler meanwhile, and send what is left at the end.

        Nested uses share the outermost buffer; ``_ADD_BATCH_SIZE`` and
        ``_ADD_BATCH_SECONDS`` still bound how long a report waits.
        """
        if self._add_buffer is not None:
            yield
            return
        self._add_buffer = []
        self._add_buffer_since = time.monotonic()
        try:
            yield
        finally:
            try:
                self._flush_add_buffer()
            finally:
                self._add_buffer = None

    def _add_graph(self, roots: list[Step], multiprocess: bool = False, processes: int = 0) -> None:
        """Walk the graphs below ``roots`` breadth-first, reporting every step once."""
        checker: SerialChecker | PoolChecker
        ping_thread_started = False
        if multiprocess:
            checker = PoolChecker(self._mp_context("parallel scheduling"), processes,
                                  self._step_completion_cache)
        else:
            checker = SerialChecker(self._step_completion_cache)
            # complete() may be slow (remote storage): keep the scheduler
            # hearing from us meanwhile. Nothing forks during a serial walk.
            ping_thread_started = self._ping_thread is None
            self._ensure_ping_thread()
        current = roots[0]
        # A walk inside run() (dynamic dependencies) keeps run()'s pace.
        pacer = self._gc_pacer if self._gc_pacer.active else self._walk_gc_pacer
        reports = self._buffered_reports()
        try:
            reports.__enter__()
            pacer.__enter__()
            seen = set()
            for root in roots:
                if root.step_id not in seen:
                    seen.add(root.step_id)
                    checker.submit(root)
            outstanding = len(seen)
            step_initialized = Step.initialized
            next_result = checker.next_result
            submit = checker.submit
            while outstanding:
                current, is_complete = next_result()
                outstanding -= 1
                pacer.tick()
                deps, dep_ids = self._add(current, is_complete)
                # Nothing new (a layer's steps share their dependencies)? A new first one says no at once.
                if not deps or (dep_ids[0] in seen and seen.issuperset(dep_ids)):
                    continue
                for dep, dep_id in zip(deps, dep_ids):
                    if dep_id not in seen:
                        # _add checked that deps are Steps; reading step_id proved the rest,
                        # unless the class has its own idea of "initialized".
                        if type(dep).initialized is not step_initialized or "initialized" in dep.__dict__:
                            self._validate_step(dep)
                        seen.add(dep_id)
                        submit(dep)
                        outstanding += 1
        except (KeyboardInterrupt, StepException):
            raise
        except Exception as ex:
            self.add_succeeded = False
            formatted_traceback = traceback.format_exc()
            logger.exception("Trun unexpected framework error while scheduling %s", current)
            current.trigger_event(Event.BROKEN_STEP, current, ex)
            self._email_unexpected_error(current, formatted_traceback)
            raise
        finally:
            checker.close()
            if ping_thread_started:
                self._stop_ping_thread()
            try:
                reports.__exit__(None, None, None)
            finally:
                pacer.__exit__(None, None, None)

    def _add_step_batcher(self, step: Step, facts: _ReportFacts) -> None:
        family = facts.family
        if family is None:
            family = step.step_family
        if family in self._batch_families_sent:
            return
        batch_param_names = type(step).batch_param_names()
        if batch_param_names:
            with self._scheduler_lock:
                self._scheduler.add_step_batcher(worker=self._id, step_family=family,
                                                 batched_args=batch_param_names,
                                                 max_batch_size=step.max_batch_size)
        self._batch_families_sent.add(family)

    def _log_complete_error(self, step: Step, trace: str) -> None:
        logger.warning("Will not run %s or any dependencies due to error in complete() method:\n%s", step, trace)

    def _log_dependency_error(self, step: Step, trace: str) -> None:
        logger.warning("Will not run %s or any dependencies due to error in deps() method:\n%s", step, trace)

    def _add(self, step: Step, is_complete: Any) -> tuple[list[Step], list[str]]:
        """Decide the status of one step, report it, and return its dependencies to visit, and their ids."""
        facts = _report_facts(step)
        step_limit = self._config.step_limit
        deps: list[Step] | None = None
        dep_ids: list[str] | None = None
        if step_limit is not None and len(self._scheduled_steps) >= step_limit:
            logger.warning("Will not run %s or any dependencies due to exceeded step-limit of %d",
                           step, step_limit)
            status, runnable = UNKNOWN, False
        else:
            formatted_traceback = None
            if is_complete is True or is_complete is False:
                pass  # the usual answers, checked first
            elif isinstance(is_complete, TracebackWrapper):
                formatted_traceback = is_complete.trace
            elif not _is_bool_like(is_complete):
                formatted_traceback = (
                    f"StepException: Return value of Step.complete() must be boolean (was {is_complete!r}); "
                    f"make {type(step).__name__}.complete() return True or False")

            if formatted_traceback is not None:
                self.add_succeeded = False
                self._log_complete_error(step, formatted_traceback)
                step.trigger_event(Event.DEPENDENCY_MISSING, step)
                self._email_complete_error(step, formatted_traceback)
                status, runnable = UNKNOWN, False
            elif is_complete:
                status, runnable = DONE, False
                if not _no_event_handlers(step, Event.DEPENDENCY_PRESENT):
                    step.trigger_event(Event.DEPENDENCY_PRESENT, step)
            elif is_external(step):
                status, runnable = PENDING, bool(self._config.retry_external_steps)
                step.trigger_event(Event.DEPENDENCY_MISSING, step)
                logger.warning("Data for %s does not exist (yet?). The step is an external data dependency, "
                               "so it cannot be run from this trun process.", step)
            else:
                try:
                    deps = step.deps()
                    if len(deps) < _MANY or not _all_steps(deps):
                        for dep in deps:
                            # A class made by Register is a Step class; anything else gets the full check.
                            if type(type(dep)) is not Register:
                                validate_requirement(step, dep)
                    if facts.family not in self._batch_families_sent:  # None: the class names its own
                        self._add_step_batcher(step, facts)
                except Exception as ex:
                    formatted_traceback = traceback.format_exc()
                    self.add_succeeded = False
                    self._log_dependency_error(step, formatted_traceback)
                    step.trigger_event(Event.BROKEN_STEP, step, ex)
                    self._email_dependency_error(step, formatted_traceback)
                    deps = None
                    status, runnable = UNKNOWN, False
                else:
                    status, runnable = PENDING, True

            if step.disabled:
                status = DISABLED

            if deps is not None:
                for dep in deps:
                    if _no_event_handlers(step, Event.DEPENDENCY_DISCOVERED):
                        break  # a fan-in of 100,000 would otherwise make as many empty calls
                    step.trigger_event(Event.DEPENDENCY_DISCOVERED, step, dep)
                dep_ids = list(map(_step_id_of, deps))

        step_id = step.step_id
        self._scheduled_steps[step_id] = step
        params = step.to_str_params()
        # StepReport(...) without the namedtuple's Python-level __new__, so in its field order.
        self._send_report(step, _new_tuple(StepReport, (
            step_id, status, runnable, dep_ids, None, None,  # step_id, status, runnable, deps, new_deps, expl
            step.resources if facts.own_resources else step.process_resources(),  # resources
            step.priority,  # priority
            facts.family if facts.family is not None else step.step_family,  # family
            facts.module if facts.module is not None else step.step_module,  # module
            params,  # params
            (facts.param_visibilities or self._param_visibilities_of(step, facts)) if params else None,
            facts.accepts_messages if facts.accepts_messages is not None else step.accepts_messages,
            False, None,  # assistant, tracking_url
            facts.batchable if facts.batchable is not None else step.batchable,  # batchable
            None,  # batch_id
            facts.retry_policy if facts.retry_policy is not None else _retry_policy_dict(step),
            _NO_OWNERS if facts.no_owners else step._owner_list())))  # owners
        if self.reporters:
            self._notify_reporters("on_scheduled", step, status, runnable)
        return deps or [], dep_ids or []

    def _notify_reporters(self, method: str, *args: Any) -> None:
        for reporter in self.reporters:
            callback = getattr(reporter, method, None)
            if callback is not None:
                try:
                    callback(*args)
                except Exception:
                    logger.warning("Progress reporter %r failed in %s", reporter, method, exc_info=True)

    # -- processes ------------------------------------------------------------------

    def _mp_context(self, purpose: str) -> Any:
        """The multiprocessing context for starting children now (our ping thread is stopped first)."""
        self._report_sender.wait()
        self._stop_ping_thread()
        context, others = choose_mp_context()
        if others and not self._spawn_reason_logged:
            self._spawn_reason_logged = True
            logger.warning(
                "Using the 'spawn' start method for %s because other threads are running in this process "
                "(%s): forking now could copy a lock held by one of them into the child. Steps must be "
                "importable and picklable.", purpose, ", ".join(others))
        return context

    # -- run phase -------------------------------------------------------------------

    def _log_remote_steps(self, response: GetWorkResponse) -> None:
        logger.debug("Done")
        logger.debug("There are no more steps to run at this time")
        if response.running_steps:
            for running in response.running_steps:
                logger.debug("%s is currently run by worker %s", running.get("step_id"), running.get("worker"))
        elif response.n_pending_steps:
            logger.debug("There are %s pending steps possibly being run by other workers",
                         response.n_pending_steps)
            if response.n_unique_pending:
                logger.debug("There are %i pending steps unique to this worker", response.n_unique_pending)
            if response.n_pending_last_scheduled:
                logger.debug("There are %i pending steps last scheduled by this worker",
                             response.n_pending_last_scheduled)

    def _get_work_step_id(self, response: dict[str, Any]) -> str | None:
        if response.get("step_id") is not None:
            return response["step_id"]
        if "batch_id" not in response:
            return None
        try:
            step = load_step(response.get("step_module"), response["step_family"], response["step_params"])
        except Exception as ex:
            self._handle_step_load_error(ex, response.get("batch_step_ids") or ())
            self.run_succeeded = False
            return None
        with self._scheduler_lock:
            self._scheduler.add_step(worker=self._id, step_id=step.step_id, module=response.get("step_module"),
                                     family=response["step_family"], params=step.to_str_params(),
                                     status=RUNNING, batch_id=response["batch_id"])
        return step.step_id

    def _get_work(self) -> GetWorkResponse:
        if self._stop_requesting_work:
            self._flush_add_buffer()
            return GetWorkResponse(None, [], 0, 0, 0, WORKER_STATE_DISABLED)
        with self._scheduler_lock:
            if self.worker_processes > 0:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("Asking scheduler for work...")
                r = self._call_get_work()
            else:
                logger.debug("Checking if steps are still pending")
                self._flush_add_buffer()
                r = self._scheduler.count_pending(worker=self._id)

        # An empty tuple, not a new list, when nothing runs elsewhere: the record
        # then holds no container, so the garbage collector never tracks it.
        running_steps = r.get("running_steps") or ()
        step_id = r.get("step_id")
        if step_id is None:
            step_id = self._get_work_step_id(r)
        if step_id is None:
            # Only answers without work say what other workers were running (all the
            # execution summary reads): one record per step run would be 20 MB per 100,000.
            self._get_work_response_history.append({"step_id": None, "running_steps": running_steps})

        if step_id is not None and step_id not in self._scheduled_steps:
            logger.info("Did not schedule %s, will load it dynamically", step_id)
            try:
                self._scheduled_steps[step_id] = load_step(r.get("step_module"), r["step_family"],
                                                           r["step_params"])
            except Exception as ex:
                self._handle_step_load_error(ex, [step_id])
                step_id = None
                self.run_succeeded = False

        if step_id is not None and "batch_step_ids" in r:
            self._batch_running_steps[step_id] = [
                s for s in (self._scheduled_steps.get(i) for i in r["batch_step_ids"]) if s is not None]

        # GetWorkResponse(...) without the namedtuple's Python-level __new__.
        return _new_tuple(GetWorkResponse, (
            step_id, running_steps, r.get("n_pending_steps", 0), r.get("n_unique_pending", 0),
            r.get("n_pending_last_scheduled", 0), r.get("worker_state", WORKER_STATE_ACTIVE)))

    def _create_step_process(self, step: Step) -> StepProcess:
        accepts_messages = _report_facts(step).accepts_messages
        if accepts_messages is None:
            accepts_messages = step.accepts_messages
        inbox = SchedulerMessageQueue() if accepts_messages else None
        reporter = StepStatusReporter(self._scheduler_calls, step.step_id, self._id, inbox)
        config = self._config
        use_multiprocessing = config.force_multiprocessing or self.worker_processes > 1
        # Positional, in the order of StepProcess's parameters: calling a class with
        # keywords first packs them into a dict, a good part of this call's cost.
        return StepProcess(step, self._id, reporter, use_multiprocessing, config.timeout,
                           config.check_unfulfilled_deps, config.check_complete_on_run,
                           self._step_completion_cache, config.step_process_context)

    def _run_step(self, step_id: str) -> None:
        if step_id in self._running_steps:
            logger.debug("Got already running step id %s from scheduler, taking a break", step_id)
            next(self._sleeper())
            return
        step = self._scheduled_steps[step_id]
        self._idle_since = None
        step_process = self._create_step_process(step)
        self._running_steps[step_id] = step_process
        if self.reporters:
            self._notify_reporters("on_started", step)
        if not step_process.use_multiprocessing:
            if self._ping_thread is None:
                self._ensure_ping_thread()
            # Handled at once rather than queued: run() would take it off the queue
            # before asking for more work anyway (it runs a step here only when no
            # other step is running).
            self._handle_result(step_process.run())
            return
        try:
            step_process.start(self._mp_context("running steps"))
        except Exception:
            logger.exception("Could not start a process for %s", step)
            step_process.result_received = True
            self._finished_results.append(StepResult(
                step_id, FAILED, f"Could not start a process for {step}:\n{traceback.format_exc()}", [], []))

    def _read_child_messages(self, step_process: StepProcess) -> None:
        conn = step_process.result_conn
        if conn is None:
            return
        try:
            while conn.poll():
                kind, *payload = conn.recv()
                if kind == "call":
                    self._dispatch_child_call(*payload)
                elif kind == "result":
                    step_process.result_received = True
                    self._finished_results.append(StepResult(*payload[0]))
        except (EOFError, OSError):
            # The child closed its end (it finished or died): nothing more will come.
            conn.close()
            step_process.result_conn = None

    def _purge_children(self) -> None:
        """Turn dead and timed-out children into FAILED results."""
        now = time.monotonic()
        for step_id, step_process in list(self._running_steps.items()):
            if step_process.process is None or step_process.result_received:
                continue
            self._read_child_messages(step_process)
            if step_process.result_received:
                continue
            step = step_process.step
            if not step_process.is_alive():
                self._read_child_messages(step_process)  # anything written just before exiting
                if step_process.result_received:
                    continue
                error_msg = f"Step {step_id} died unexpectedly with exit code {step_process.exitcode}"
                step.trigger_event(Event.PROCESS_FAILURE, step, error_msg)
            elif step_process.timeout_time is not None and now > step_process.timeout_time:
                step_process.terminate()
                error_msg = (f"Step {step_id} timed out after {step_process.worker_timeout:g} seconds "
                             "and was terminated.")
                step.trigger_event(Event.TIMEOUT, step, error_msg)
            else:
                continue
            logger.info(error_msg)
            step_process.result_received = True
            self._finished_results.append(StepResult(step_id, FAILED, error_msg, [], []))

    def _reap_exited_children(self, wait: bool = False) -> None:
        """Reap the children that sent their result and have exited since, without waiting for them.

        A child tears its memory down after sending its result, which takes
        time in proportion to the worker's size (the child is a copy of it):
        the worker starts the next step meanwhile. A child still alive
        :data:`EXIT_GRACE_SECONDS` after its result left a non-daemon thread
        behind and is terminated. With ``wait`` (when the worker stops) each is
        waited for, up to the end of its grace.
        """
        exiting = self._exiting_children
        if not exiting:
            return
        still_exiting = []
        for deadline, step_process in exiting:
            now = time.monotonic()
            timeout = deadline - now if wait else 0.0
            if not step_process.reap(terminate=wait or now >= deadline, timeout=timeout):
                still_exiting.append((deadline, step_process))
        self._exiting_children = still_exiting

    def _wait_for_children(self, timeout: float) -> None:
        waitables: list[Any] = []
        for step_process in self._running_steps.values():
            if step_process.process is None or step_process.result_received:
                continue
            if step_process.result_conn is not None:
                waitables.append(step_process.result_conn)
            waitables.append(step_process.process.sentinel)
        if not waitables:
            time.sleep(timeout)
            return
        ready = multiprocessing.connection.wait(waitables, timeout)
        if ready:
            for step_process in list(self._running_steps.values()):
                if step_process.result_conn in ready:
                    self._read_child_messages(step_process)

    def _handle_next_step(self) -> None:
        """Wait up to ``wait_interval`` for a running step to finish, and report it.

        A step can be "done" three ways: it ran (or failed) and sent a result;
        it yielded new dynamic dependencies; or its process died or timed out.
        """
        self._idle_since = None
        self._reap_exited_children()
        finished = self._finished_results
        while finished:  # results already in (e.g. of a child that could not be started)
            if self._handle_result(finished.popleft()):
                return
        deadline = time.monotonic() + self._config.wait_interval
        while True:
            while finished:
                if self._handle_result(finished.popleft()):
                    return
            self._purge_children()
            if self._finished_results:
                continue
            now = time.monotonic()
            if now >= deadline:
                return
            self._ping_if_due()
            # About to wait: reports must not wait with us.
            self._flush_add_buffer()
            wake = min(deadline, self._next_ping) if self._ping_thread is None else deadline
            for step_process in self._running_steps.values():
                if step_process.timeout_time is not None and not step_process.result_received:
                    wake = min(wake, step_process.timeout_time + 0.001)
            self._wait_for_children(max(0.0, wake - time.monotonic()))

    def _load_new_dep(self, item: Any) -> Step:
        if isinstance(item, Step):
            return item
        module, family, params = item
        return load_step(module, family, params)

    def _handle_result(self, result: StepResult) -> bool:
        step_id, status, expl, missing, new_requirements = result
        step = self._scheduled_steps.get(step_id)
        step_process = self._running_steps.get(step_id)
        if step is None or step_process is None:
            return False  # not (or no longer) ours: already handled

        new_deps: list[str] = []
        if new_requirements:
            try:
                new_steps = [self._load_new_dep(item) for item in new_requirements]
            except Exception:
                status = FAILED
                expl = f"Could not load the dynamic dependencies {step} yielded:\n{traceback.format_exc()}"
                logger.error(expl)
            else:
                for new_step in new_steps:
                    self._validate_step(new_step)
                self._add_graph(new_steps)
                new_deps = [new_step.step_id for new_step in new_steps]

        if status == FAILED and not (is_external(step) and self._config.retry_external_steps):
            self._email_step_failure(step, expl)

        facts = _report_facts(step)
        params = step.to_str_params()
        # StepReport(...) without the namedtuple's Python-level __new__, so in its field order.
        self._send_report(step, _new_tuple(StepReport, (
            # step_id, status, runnable, deps, new_deps, expl
            step_id, status, None, None, new_deps, "null" if expl is None else _expl_json(expl),
            step.resources if facts.own_resources else step.process_resources(),  # resources
            0,  # priority
            facts.family if facts.family is not None else step.step_family,  # family
            facts.module if facts.module is not None else step.step_module,  # module
            params,  # params
            (facts.param_visibilities or self._param_visibilities_of(step, facts)) if params else None,
            # accepts_messages, assistant, tracking_url, batchable, batch_id
            False, self._assistant, None, None, None,
            facts.retry_policy if facts.retry_policy is not None else _retry_policy_dict(step),
            _NO_OWNERS if facts.no_owners else step._owner_list())))  # owners
        self._running_steps.pop(step_id)
        if not step_process.close(wait=False):
            self._exiting_children.append((time.monotonic() + EXIT_GRACE_SECONDS, step_process))
        if status == DONE and self._step_completion_cache is not None:
            self._step_completion_cache[step_id] = True
        if self.reporters:
            self._notify_reporters("on_finished", step, status if type(status) is StepStatus else StepStatus(status))

        if missing:
            # Schedule again, so that the vanished dependencies run first; but
            # not for ever if they keep vanishing.
            reschedule = True
            for missing_id in missing:
                self.unfulfilled_counts[missing_id] += 1
                if self.unfulfilled_counts[missing_id] > self._config.max_reschedules:
                    reschedule = False
            if reschedule:
                self.add(step)

        self.run_succeeded &= (status == DONE) or len(new_deps) > 0
        return True

    def _sleep(self, seconds: float) -> None:
        """Sleep, pinging the scheduler on time meanwhile."""
        end = time.monotonic() + seconds
        while True:
            self._ping_if_due()
            now = time.monotonic()
            if now >= end:
                return
            wake = end if self._ping_thread is not None else min(end, self._next_ping)
            time.sleep(max(0.0, wake - now))

    def _sleeper(self) -> Iterator[None]:
        while True:
            wait_interval = self._config.wait_interval + random.uniform(0, self._config.wait_jitter)
            logger.debug("Sleeping for %f seconds", wait_interval)
            self._sleep(wait_interval)
            yield

    def _keep_alive(self, response: GetWorkResponse) -> bool:
        """Whether to stay and ask again although there is no work for us now.

        Never without ``keep_alive``; always for an assistant; otherwise while
        pending steps remain (only those unique to us with ``count_uniques``,
        last scheduled by us with ``count_last_scheduled``), for at most
        ``max_keep_alive_idle_duration`` of idling when that is set.
        """
        if not self._keep_alive_enabled:
            return False
        if self._assistant:
            return True
        if self._config.count_last_scheduled:
            return response.n_pending_last_scheduled > 0
        if self._config.count_uniques:
            return response.n_unique_pending > 0
        if response.n_pending_steps == 0:
            return False
        max_idle = self._config.max_keep_alive_idle_duration
        if not max_idle or not self._idle_since:
            return True
        time_to_shutdown = self._idle_since + max_idle - datetime.datetime.now()
        logger.debug("[%s] %s until shutdown", self._id, time_to_shutdown)
        return time_to_shutdown > datetime.timedelta(0)

    def handle_interrupt(self, signum: int, _frame: Any) -> None:
        """SIGUSR1: stop asking for work, finish the steps that run, then exit."""
        if signum == signal.SIGUSR1:
            self._start_phasing_out()

    def _start_phasing_out(self) -> None:
        if not self._stop_requesting_work:
            logger.info("Worker %s stops asking for work; finishing the steps that run", self._id)
        self._keep_alive_enabled = False
        self._stop_requesting_work = True

    def run(self) -> bool:
        """Run steps until the scheduler has none left for us; True if every step we ran succeeded."""
        logger.info("Running Worker with %d processes", self.worker_processes)
        sleeper = self._sleeper()
        self.run_succeeded = True
        self._add_worker()
        self._next_ping = time.monotonic() + self._config.ping_interval
        pacer = self._gc_pacer
        # Results are reported along with the next get_work (see _call_get_work).
        reports = self._buffered_reports()
        try:
            reports.__enter__()
            pacer.__enter__()
            while True:
                while len(self._running_steps) >= self.worker_processes > 0:
                    if logger.isEnabledFor(logging.DEBUG):
                        logger.debug("%d running steps, waiting for next step to finish", len(self._running_steps))
                    self._handle_next_step()

                response = self._get_work()
                if response.worker_state == WORKER_STATE_DISABLED:
                    self._start_phasing_out()

                if response.step_id is None:
                    if not self._stop_requesting_work:
                        self._log_remote_steps(response)
                    if not self._running_steps:
                        self._idle_since = self._idle_since or datetime.datetime.now()
                        if self._keep_alive(response):
                            self._reap_exited_children()  # no zombie waits out an idle spell
                            next(sleeper)
                            continue
                        break
                    self._handle_next_step()
                    continue

                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("Pending steps: %s", response.n_pending_steps)
                pacer.tick()
                self._run_step(response.step_id)

            while self._running_steps:
                logger.debug("Shut down Worker, %d more steps to go", len(self._running_steps))
                self._handle_next_step()
            self._reap_exited_children(wait=True)
        finally:
            try:
                reports.__exit__(None, None, None)
            finally:
                pacer.__exit__(None, None, None)
                self._stop_ping_thread()
        return self.run_succeeded


def _expl_json(expl: Any) -> str:
    """The explanation of a result as JSON; anything JSON cannot encode is written as its ``str()``."""
    if expl is None:
        return "null"  # the usual case: a step that succeeded and said nothing
    if type(expl) is str:
        return json.dumps(expl)  # json's shared encoder: a default= argument builds a new one per call
    return json.dumps(expl, default=str)


def _is_bool_like(value: Any) -> bool:
    # Luigi accepts anything equal to True or False (0, 1, numpy booleans).
    try:
        return value in (True, False)
    except Exception:  # e.g. an array whose truth is ambiguous
        return False
