"""Running one step: here and now, or in a child process that the worker watches.

:class:`StepProcess` wraps everything that happens to one step once the
scheduler has handed it to a worker: the check that its dependencies are
really complete, the ``START`` event, ``run()`` itself (driving a generator
``run()`` through its dynamic dependencies), the completeness check of an
external step, ``on_success``/``on_failure`` and the ``SUCCESS``/``FAILURE``/
``PROCESSING_TIME`` events. The outcome is a :class:`StepResult`.

The worker either calls :meth:`StepProcess.run` in its own process (one worker
process, no timeout) or :meth:`StepProcess.start`\\ s a child process. A child
talks to the worker over one pipe of its own: calls the step makes on the
scheduler (``set_status_message``, ``set_tracking_url``, ...) travel as
messages and the worker makes them, so they work with the in-process
scheduler too; the last message is the result. Scheduler messages for a step
that ``accepts_messages`` travel the other way on a second pipe.

Hazards:

* ``START``, ``SUCCESS``, ``FAILURE`` and ``PROCESSING_TIME`` fire in the
  process that runs the step. In a child, handlers run on a copy of the
  parent's memory (``fork``) or on freshly imported modules (``spawn``):
  state they change does not come back to the parent.
* A generator ``run()`` that yields incomplete dependencies is abandoned and
  **starts again from the top** next time the step runs, exactly as in
  Luigi: code before a ``yield`` must be safe to repeat.
* With the ``spawn`` start method the step, its class and a
  ``step_process_context`` class must be importable and picklable.
* Events are not dispatched at all while no handler exists anywhere (and
  the class keeps Step's ``trigger_event``): a handler registered by a
  running step is heard from its next event on.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import inspect
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import Any, NamedTuple

from trun.event import Event
from trun.step import DynamicRequirements, Step, _class_facts, _no_event_handlers, flatten
from trun.step_status import DONE, FAILED, PENDING, RUNNING, StepStatus

__all__ = [
    "SchedulerMessage",
    "SchedulerMessageQueue",
    "StepException",
    "StepProcess",
    "StepResult",
    "StepStatusReporter",
    "check_complete_cached",
    "is_external",
]

logger = logging.getLogger("trun-interface")

#: How long a child that sent its result may take to exit before it is terminated.
EXIT_GRACE_SECONDS = 2.0

#: Scheduler methods a step (through its status reporter) may have the worker
#: call on its behalf. Anything else arriving from a child is refused.
REPORTER_METHODS = frozenset({
    "add_step",
    "set_step_status_message",
    "set_step_progress_percentage",
    "decrease_running_step_resources",
    "add_scheduler_message_response",
    "report_step_statistics",
})


class StepException(Exception):
    """A step broke one of the worker's rules (not a Step, not initialised, incomplete after run...)."""


class StepResult(NamedTuple):
    """What running a step produced; the worker reports it to the scheduler."""

    step_id: str
    status: StepStatus
    #: ``on_success()``'s return value, ``on_failure()``'s text, or an explanation.
    expl: Any
    #: Dependencies found incomplete just before ``run()`` (ids, with missing outputs).
    missing: list[str]
    #: Dynamic dependencies that were not complete: Steps when run in this
    #: process, ``(module, family, str_params)`` triples when sent from a child.
    new_deps: list[Any]


def is_external(step: Step) -> bool:
    """True if the worker must never run ``step``, only check it (``run`` is None or NotImplemented)."""
    run = getattr(step, "run", None)
    return run is None or run is NotImplemented


def check_complete_cached(step: Step, completion_cache: dict[str, bool] | None = None) -> Any:
    """``step.complete()``, remembering positive answers in ``completion_cache`` when one is given.

    Only ``True`` is cached: a step that is incomplete now may be complete by the
    time it is asked again.
    """
    if completion_cache is not None and completion_cache.get(step.step_id):
        return True
    is_complete = step.complete()
    if completion_cache is not None and is_complete is True:
        completion_cache[step.step_id] = True
    return is_complete


class SchedulerMessage:
    """A message sent to a running step from the scheduler (for example from the web UI).

    A step whose ``accepts_messages`` is true reads them from
    ``self.scheduler_messages`` while it runs, and may answer with
    :meth:`respond`.
    """

    def __init__(self, scheduler: Any, step_id: str, message_id: str, content: str, **payload: Any) -> None:
        self._scheduler = scheduler
        self._step_id = step_id
        self._message_id = message_id
        #: The text of the message.
        self.content = content
        #: Any extra fields the scheduler sent along.
        self.payload = payload

    def respond(self, response: Any) -> None:
        """Send ``response`` back to the scheduler as the answer to this message."""
        if self._scheduler is None:
            raise StepException("this SchedulerMessage is not attached to a scheduler; "
                                "only messages read from step.scheduler_messages can be answered")
        self._scheduler.add_scheduler_message_response(
            step_id=self._step_id, message_id=self._message_id, response=response)

    def __getstate__(self) -> dict[str, Any]:
        # The scheduler handle never crosses a process boundary; the receiving
        # queue attaches the one that is valid on its side.
        state = dict(self.__dict__)
        state["_scheduler"] = None
        return state

    def __str__(self) -> str:
        return str(self.content)

    def __repr__(self) -> str:
        return f"SchedulerMessage(step_id={self._step_id!r}, message_id={self._message_id!r}, content={self.content!r})"

    def __eq__(self, other: object) -> bool:
        return self.content == other

    def __hash__(self) -> int:
        return hash(self.content)


class SchedulerMessageQueue:
    """``step.scheduler_messages`` while a step that accepts messages runs.

    Behaves like :class:`queue.Queue` for the step: ``get(block=True,
    timeout=None)``, ``get_nowait()``, ``empty()``. In this process it is a
    thread-safe queue; for a step running in a child process the worker moves
    it onto a pipe before starting the child (:meth:`use_pipe`).
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[SchedulerMessage] | None = queue.Queue()
        self._reader: Any = None
        self._writer: Any = None
        self._scheduler: Any = None

    def use_pipe(self, mp_context: Any) -> None:
        """Carry messages to a child process from now on (called by the worker before forking)."""
        self._reader, self._writer = mp_context.Pipe(duplex=False)
        self._queue = None

    def attach(self, scheduler: Any) -> None:
        """Answers to messages read from here go to ``scheduler``."""
        self._scheduler = scheduler

    def put(self, message: SchedulerMessage) -> None:
        """Deliver ``message`` to the step (worker side)."""
        if self._queue is not None:
            self._queue.put(message)
        else:
            self._writer.send(message)

    def get(self, block: bool = True, timeout: float | None = None) -> SchedulerMessage:
        """The next message; raises :class:`queue.Empty` when none arrives in time."""
        if self._queue is not None:
            message = self._queue.get(block, timeout)
        else:
            # poll(None) waits for ever, as Queue.get(block=True, timeout=None) does.
            if not self._reader.poll(timeout if block else 0):
                raise queue.Empty
            message = self._reader.recv()
        message._scheduler = self._scheduler
        return message

    def get_nowait(self) -> SchedulerMessage:
        """The next message, or :class:`queue.Empty` at once."""
        return self.get(block=False)

    def empty(self) -> bool:
        """True if no message is waiting right now."""
        if self._queue is not None:
            return self._queue.empty()
        return not self._reader.poll(0)

    def close(self) -> None:
        """Release the pipe, if any."""
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scheduler"] = None  # attached again on the child's side
        return state


class StepStatusReporter:
    """The calls a running step makes on the scheduler, bound to one step and one worker.

    The worker hands these methods to the step for the duration of ``run()``:
    ``step.set_tracking_url``, ``step.set_status_message``,
    ``step.set_progress_percentage``, ``step.decrease_running_resources``,
    and ``step.scheduler_messages`` (for steps that accept messages).
    ``scheduler`` is anything with the scheduler's methods: the worker's
    scheduler in process, a pipe back to the worker in a child.
    """

    def __init__(self, scheduler: Any, step_id: str, worker_id: str,
                 scheduler_messages: SchedulerMessageQueue | None = None) -> None:
        self._scheduler = scheduler
        self._step_id = step_id
        self._worker_id = worker_id
        self.scheduler_messages = scheduler_messages
        if scheduler_messages is not None:
            scheduler_messages.attach(scheduler)

    def bind(self, scheduler: Any) -> None:
        """Send calls (and message answers) to ``scheduler`` from now on."""
        self._scheduler = scheduler
        if self.scheduler_messages is not None:
            self.scheduler_messages.attach(scheduler)

    def update_tracking_url(self, tracking_url: str) -> None:
        """Show ``tracking_url`` (e.g. a Hadoop job page) for this step in the scheduler."""
        self._scheduler.add_step(step_id=self._step_id, worker=self._worker_id, status=RUNNING,
                                 tracking_url=tracking_url)

    def update_status_message(self, message: str) -> None:
        """Show ``message`` as this step's status message."""
        self._scheduler.set_step_status_message(step_id=self._step_id, status_message=message)

    def update_progress_percentage(self, percentage: float) -> None:
        """Show ``percentage`` as this step's progress."""
        self._scheduler.set_step_progress_percentage(step_id=self._step_id, progress_percentage=percentage)

    def decrease_running_resources(self, decrease_resources: dict[str, int]) -> None:
        """Give back part of the resources this step holds, so that other steps can start."""
        self._scheduler.decrease_running_step_resources(step_id=self._step_id,
                                                        decrease_resources=decrease_resources)

    def report_step_statistics(self, statistics: dict[str, Any]) -> None:
        """Hand custom statistics of this run to the scheduler (if it collects any; else logged)."""
        logger.debug("Statistics of %s: %s", self._step_id, statistics)
        try:
            self._scheduler.report_step_statistics(step_id=self._step_id, statistics=statistics)
        except AttributeError:
            pass  # the scheduler collects no statistics

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scheduler"] = None  # rebound in the child (see bind)
        return state


# (attribute of StepStatusReporter, attribute set on the step while it runs)
_FORWARDED_ATTRIBUTES = (
    ("update_tracking_url", "set_tracking_url"),
    ("update_status_message", "set_status_message"),
    ("update_progress_percentage", "set_progress_percentage"),
    ("decrease_running_resources", "decrease_running_resources"),
    ("scheduler_messages", "scheduler_messages"),
)
# StepResult(...) without the namedtuple's Python-level __new__ (once per step).
_new_tuple = tuple.__new__

_FORWARDED_NAMES = tuple(step_attr for _, step_attr in _FORWARDED_ATTRIBUTES)
_ABSENT = object()


def _plain_attribute_setting(cls: type) -> bool:
    """True when ``setattr(step, name, value)`` only writes the instance dict, for the forwarded names.

    That is: the class keeps object's ``__setattr__`` and no class in its MRO
    makes one of those names a descriptor with ``__set__`` (a property, say).
    """
    facts = cls._trun_facts
    if facts is None or facts.owner is not cls:
        facts = _class_facts(cls)
    plain = facts.get("step_process.plain_setattr")
    if plain is None:
        plain = cls.__setattr__ is object.__setattr__ and not any(
            hasattr(type(inspect.getattr_static(cls, name, None)), "__set__") for name in _FORWARDED_NAMES)
        facts["step_process.plain_setattr"] = plain
    return plain


class StepProcess:
    """Runs one step and produces its :class:`StepResult`.

    ``worker_timeout`` is the worker's default timeout in seconds; the step's
    own ``worker_timeout`` (when not None) wins. Any timeout, or
    ``use_multiprocessing``, means the step must run in a child process
    (:attr:`use_multiprocessing`). ``context`` is the dotted name of a class
    used as a context manager around the run (``[worker]
    step_process_context``); it is instantiated with this object.
    """

    # Class-level defaults: a step run in this process never changes them, and
    # one StepProcess is made per step run (start() sets them for a child).
    #: ``time.monotonic()`` after which the worker terminates the child.
    timeout_time: float | None = None
    #: The child process once started (a ``multiprocessing`` process).
    process: Any = None
    #: The worker's end of the child's pipe.
    result_conn: Any = None
    #: Set once the worker has a result for this run (from the child or its own verdict).
    result_received = False

    def __init__(self, step: Step, worker_id: str, status_reporter: StepStatusReporter,
                 use_multiprocessing: bool = False, worker_timeout: float = 0,
                 check_unfulfilled_deps: bool = True, check_complete_on_run: bool = False,
                 completion_cache: dict[str, bool] | None = None, context: str | None = None) -> None:
        self.step = step
        self.worker_id = worker_id
        self.status_reporter = status_reporter
        step_timeout = getattr(step, "worker_timeout", None)
        timeout = step_timeout if step_timeout is not None else worker_timeout
        #: Seconds the step may run before it is terminated, or None.
        self.worker_timeout: float | None = timeout or None
        #: True when the step must run in a child process.
        self.use_multiprocessing = bool(use_multiprocessing or self.worker_timeout is not None)
        self.check_unfulfilled_deps = check_unfulfilled_deps
        self.check_complete_on_run = check_complete_on_run
        self.completion_cache = completion_cache
        self.context = context

    # -- running here ----------------------------------------------------------

    def run(self) -> StepResult:
        """Run the step in this process, inside ``context`` if one is configured."""
        if not self.context:
            return self._run()
        try:
            module_path, _, class_name = self.context.rpartition(".")
            if not module_path:
                raise StepException(f"[worker] step_process_context must be a dotted 'module.Class' "
                                    f"name, got {self.context!r}")
            manager = getattr(importlib.import_module(module_path), class_name)(self)
        except Exception:
            logger.exception("Could not set up [worker] step_process_context %r for %s", self.context, self.step)
            expl = (f"Could not set up [worker] step_process_context {self.context!r}:\n"
                    + traceback.format_exc())
            return StepResult(self.step.step_id, FAILED, expl, [], [])
        with manager:
            return self._run()

    def check_complete(self, step: Step) -> Any:
        """``step.complete()``, through the completion cache when the worker keeps one."""
        return check_complete_cached(step, self.completion_cache)

    def _run(self) -> StepResult:
        step = self.step
        # os.getpid() and formatting only when someone listens (this runs once per step).
        log_info = logger.isEnabledFor(logging.INFO)
        if log_info:
            logger.info("[pid %s] Worker %s running   %s", os.getpid(), self.worker_id, step)
        status: StepStatus = FAILED
        expl: Any = ""
        missing: list[str] = []
        new_deps: list[Step] = []
        try:
            external = is_external(step)
            # An external step's own completeness is what matters, not its inputs.
            if self.check_unfulfilled_deps and not external:
                missing = self._missing_dependencies()
                if missing:
                    noun = "dependency" if len(missing) == 1 else "dependencies"
                    raise RuntimeError(f"Unfulfilled {noun} at run time: {', '.join(missing)}")
            if not _no_event_handlers(step, Event.START):
                step.trigger_event(Event.START, step)
            started = time.time()
            if external:
                if self.check_complete(step):
                    status = DONE
                else:
                    status = FAILED
                    expl = "Step is an external data dependency and data does not exist (yet?)."
            else:
                saved = self._forward_attributes()
                try:
                    new_deps = self._run_get_new_deps()
                finally:
                    self._restore_attributes(saved)
                if new_deps:
                    status = PENDING
                elif not self.check_complete_on_run or self.check_complete(step):
                    status = DONE
                else:
                    raise StepException(
                        f"Step {step} finished running, but complete() is still returning false. "
                        "Make run() create every output, or set [worker] check_complete_on_run = false.")
            if new_deps:
                if log_info:
                    logger.info("[pid %s] Worker %s new requirements      %s", os.getpid(), self.worker_id, step)
            elif status == DONE:
                if not _no_event_handlers(step, Event.PROCESSING_TIME):
                    step.trigger_event(Event.PROCESSING_TIME, step, time.time() - started)
                expl = step.on_success()
                if log_info:
                    logger.info("[pid %s] Worker %s done      %s", os.getpid(), self.worker_id, step)
                if not _no_event_handlers(step, Event.SUCCESS):
                    step.trigger_event(Event.SUCCESS, step)
                if self.completion_cache is not None:
                    self.completion_cache[step.step_id] = True
        except KeyboardInterrupt:
            raise
        except BaseException as ex:  # noqa: BLE001 - SystemExit in run() fails the step, as in Luigi
            status = FAILED
            expl = self._handle_run_exception(ex)
        return _new_tuple(StepResult, (step.step_id, status, expl, missing, new_deps))

    def _handle_run_exception(self, ex: BaseException) -> Any:
        step = self.step
        logger.exception("[pid %s] Worker %s failed    %s", os.getpid(), self.worker_id, step)
        step.trigger_event(Event.FAILURE, step, ex)
        try:
            return step.on_failure(ex)
        except Exception:  # a broken on_failure must not lose the failure itself
            logger.exception("%s.on_failure() raised while handling a failure", step)
            return "".join(traceback.format_exception(type(ex), ex, ex.__traceback__))

    def _missing_dependencies(self) -> list[str]:
        deps = self.step.deps()
        if not deps:
            return []
        missing = []
        # Without a completion cache, check_complete() is complete(): called directly, as
        # this runs for every dependency of every step (100,000 for a big fan-in's root).
        direct = self.completion_cache is None and "check_complete" not in self.__dict__ and (
            type(self).check_complete is StepProcess.check_complete)
        for dep in deps:
            if dep.complete() if direct else self.check_complete(dep):
                continue
            try:
                absent = [str(out) for out in flatten(dep.output()) if not out.exists()]
            except Exception:  # the id alone still tells the user which dependency
                absent = []
            missing.append(f"{dep.step_id} ({', '.join(absent)})" if absent else dep.step_id)
        return missing

    def _forward_attributes(self) -> list[tuple[str, Any]] | None:
        """Hand the reporter's callbacks to the step; returns what to restore afterwards (None: remove them)."""
        step = self.step
        reporter = self.status_reporter
        state = step.__dict__
        if state.keys().isdisjoint(_FORWARDED_NAMES) and _plain_attribute_setting(type(step)):
            # The usual case: nothing to save, and setattr would only write the instance dict.
            # _FORWARDED_ATTRIBUTES written out (a loop of getattr() costs more, once per step).
            state["set_tracking_url"] = reporter.update_tracking_url
            state["set_status_message"] = reporter.update_status_message
            state["set_progress_percentage"] = reporter.update_progress_percentage
            state["decrease_running_resources"] = reporter.decrease_running_resources
            state["scheduler_messages"] = reporter.scheduler_messages
            return None
        saved = []
        for reporter_attr, step_attr in _FORWARDED_ATTRIBUTES:
            saved.append((step_attr, state.get(step_attr, _ABSENT)))
            setattr(step, step_attr, getattr(reporter, reporter_attr))
        return saved

    def _restore_attributes(self, saved: list[tuple[str, Any]] | None) -> None:
        step = self.step
        if saved is None:
            state = step.__dict__
            for step_attr in _FORWARDED_NAMES:
                state.pop(step_attr, None)
            return
        for step_attr, previous in saved:
            if previous is _ABSENT:
                step.__dict__.pop(step_attr, None)
            else:
                setattr(step, step_attr, previous)

    def _run_get_new_deps(self) -> list[Step]:
        generator = self.step.run()
        if not isinstance(generator, types.GeneratorType):
            return []
        to_send: Any = None
        first = True
        while True:
            try:
                requires = next(generator) if first else generator.send(to_send)
            except StopIteration:
                return []
            first = False
            if not isinstance(requires, DynamicRequirements):
                requires = DynamicRequirements(requires)
            for item in requires.flat_requirements:
                if not isinstance(item, Step):
                    raise StepException(
                        f"{self.step} yielded {item!r} ({type(item).__name__}) from run(); yield Steps, "
                        "structures of Steps, or trun.DynamicRequirements. To depend on existing data, "
                        "wrap it in an ExternalStep.")
            if not requires.complete(self.check_complete):
                # run() starts again from the top once these are done.
                return list(requires.flat_requirements)
            to_send = requires.paths

    # -- running in a child ----------------------------------------------------

    def start(self, mp_context: Any) -> None:
        """Start the step in a child process of ``mp_context`` (``fork`` or ``spawn``)."""
        inbox = self.status_reporter.scheduler_messages
        if inbox is not None:
            inbox.use_pipe(mp_context)
        reader, writer = mp_context.Pipe(duplex=False)
        family = getattr(self.step, "step_family", "step")
        self.worker_pid = os.getpid()
        # Learned here rather than in the child, so that every forked child
        # inherits them instead of working them out again (about 0.1 ms, some
        # 7% of a child's own CPU time).
        _plain_attribute_setting(type(self.step))
        _pdeathsig_setter()
        # Assigned after start(): with spawn, `self` is pickled during start().
        process = mp_context.Process(target=_child_main, args=(self, writer), name=f"trun-{family}"[:60])
        try:
            process.start()
        finally:
            writer.close()
        self.process = process
        self.result_conn = reader
        if self.worker_timeout is not None:
            self.timeout_time = time.monotonic() + self.worker_timeout

    def is_alive(self) -> bool:
        """True while the child process runs (always False for a step run in this process)."""
        return self.process is not None and self.process.is_alive()

    @property
    def exitcode(self) -> int | None:
        """Exit code of the child (negative: killed by that signal), None while it runs."""
        return None if self.process is None else self.process.exitcode

    def terminate(self) -> None:
        """Stop the child and everything it started (using psutil if installed)."""
        process = self.process
        if process is None or not process.is_alive():
            return
        try:
            import psutil
        except ImportError:
            _terminate_then_kill(process)
            return
        try:
            descendants = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        # The step process first, so that it cannot start new children meanwhile.
        _terminate_then_kill(process)
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.terminate()
        for child in _still_running(descendants, grace=2.0):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def close(self, wait: bool = True) -> bool:
        """Release the pipes, and reap the child if it has exited; True once nothing is left to reap.

        With ``wait`` (the default) this waits up to :data:`EXIT_GRACE_SECONDS`
        for the child to exit. Without it, a child still exiting is left for
        :meth:`reap`: tearing down a process costs time in proportion to its
        memory, which a worker need not spend waiting.
        """
        if self.result_conn is not None:
            self.result_conn.close()
            self.result_conn = None
        inbox = self.status_reporter.scheduler_messages
        if inbox is not None:
            inbox.close()
        if self.process is None:
            return True
        if wait:
            self.process.join(timeout=EXIT_GRACE_SECONDS)
        return self.reap(terminate=wait)

    def reap(self, terminate: bool = False, timeout: float = 0.0) -> bool:
        """Collect the exit of a child that already sent its result; True once it is reaped.

        Waits up to ``timeout`` seconds. With ``terminate``, a child still alive
        then is terminated: it left a non-daemon thread behind, and would never
        exit by itself.
        """
        process = self.process
        if process is None:
            return True
        if timeout > 0:
            process.join(timeout=timeout)
        if process.exitcode is None:
            if not terminate:
                return False
            logger.warning("The process of %s is still alive after sending its result; terminating it", self.step)
            self.terminate()
        if process.exitcode is not None:
            process.close()
        self.process = None
        return True

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["process"] = None
        state["result_conn"] = None
        return state


def _still_running(processes: list[Any], grace: float) -> list[Any]:
    """The psutil processes still running after up to ``grace`` seconds.

    Orphans are not our children, so we cannot reap them: a zombie counts as gone.
    """
    import psutil

    deadline = time.monotonic() + grace
    while True:
        alive = []
        for proc in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        if not alive or time.monotonic() >= deadline:
            return alive
        processes = alive
        time.sleep(0.02)


def _terminate_then_kill(process: Any, grace: float = 3.0) -> None:
    process.terminate()
    process.join(grace)
    if process.is_alive():
        process.kill()
        process.join(grace)


class _PipeScheduler:
    """In a child: the scheduler, as seen through the pipe to the worker (calls only, no answers)."""

    def __init__(self, conn: Any, lock: threading.Lock) -> None:
        self._conn = conn
        self._lock = lock

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in REPORTER_METHODS:
            raise AttributeError(name)

        def call(**kwargs: Any) -> None:
            with self._lock:  # a step may report from several threads
                self._conn.send(("call", name, kwargs))
        return call


def _die_with_worker(worker_pid: int) -> None:
    """Have the kernel kill this process when the worker that started it dies.

    Once the worker is gone its steps' leases lapse and the scheduler gives them to
    another worker; a step still running here would then run twice at once.
    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere a no-op.
    """
    set_pdeathsig = _pdeathsig_setter()
    if set_pdeathsig is None:
        return
    try:
        set_pdeathsig(signal.SIGKILL)
    except OSError:
        logger.debug("prctl(PR_SET_PDEATHSIG) failed; step process won't follow its worker's death")
        return
    if os.getppid() != worker_pid:  # the worker died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


@functools.cache
def _pdeathsig_setter() -> Callable[[int], None] | None:
    """``prctl(PR_SET_PDEATHSIG, signal)`` as a function, or None where there is none (not Linux).

    Loading libc through ctypes builds classes and opens the library: done
    once per process and kept, so that forked children find it ready.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no libc with prctl: children keep running as before
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; step processes won't follow their worker's death")
        return None

    def set_pdeathsig(signum: int) -> None:
        if prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    return set_pdeathsig


def _child_main(step_process: StepProcess, conn: Any) -> None:
    """Entry point of a step's child process: run, then send the result to the worker."""
    _die_with_worker(getattr(step_process, "worker_pid", os.getppid()))
    # Steps that draw random numbers do not all draw the same ones: Python
    # reseeds the random module in every forked child (and a spawned child
    # starts afresh), so there is nothing to do here.
    lock = threading.Lock()
    step_process.status_reporter.bind(_PipeScheduler(conn, lock))
    result = step_process.run()
    new_deps = [(dep.step_module, dep.step_family, dep.to_str_params()) for dep in result.new_deps]
    result = result._replace(new_deps=new_deps)
    with lock:
        try:
            conn.send(("result", result))
        except Exception as ex:  # e.g. on_success() returned something unpicklable
            expl = result.expl if isinstance(result.expl, str) else repr(result.expl)
            logger.warning("Could not send the result of %s to the worker as is (%s); sending it as text",
                           step_process.step, ex)
            conn.send(("result", result._replace(expl=expl)))
    conn.close()
