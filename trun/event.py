"""Names of the events a worker fires while it schedules and runs steps.

Register a handler with :meth:`trun.Step.event_handler`; the worker calls
:meth:`trun.Step.trigger_event` at the points listed below.  The values are
the plain strings that identify each event, so a handler may be registered
with either ``Event.SUCCESS`` or ``"event.core.success"``.

Hazards:

* Handlers run in the process that fires the event.  ``START``, ``SUCCESS``,
  ``FAILURE`` and ``PROCESSING_TIME`` fire where the step runs, which is a
  child process when the worker runs steps in subprocesses: a handler that
  mutates module state there does not change the parent's state.
* An exception raised by a handler is logged and swallowed; it never fails
  the step.
"""
from __future__ import annotations

__all__ = ["Event"]


class Event:
    """Event names understood by :meth:`trun.Step.event_handler`.

    Each constant documents when the worker fires it and which positional
    arguments the handler receives.
    """

    #: While scheduling, once per dependency edge: ``(step, dependency)``.
    DEPENDENCY_DISCOVERED = "event.core.dependency.discovered"
    #: While scheduling, when an external step is incomplete or ``complete()``
    #: raised: ``(step,)``.
    DEPENDENCY_MISSING = "event.core.dependency.missing"
    #: While scheduling, when a step is already complete: ``(step,)``.
    DEPENDENCY_PRESENT = "event.core.dependency.present"
    #: While scheduling, when ``requires()``/``deps()`` raised or the step
    #: could not be scheduled: ``(step, exception)``.
    BROKEN_STEP = "event.core.step.broken"
    #: Just before ``run()``: ``(step,)``.
    START = "event.core.start"
    #: Never fired by trun itself; free for user code to report progress.
    PROGRESS = "event.core.progress"
    #: ``run()`` raised: ``(step, exception)``.
    FAILURE = "event.core.failure"
    #: ``run()`` returned and the step succeeded: ``(step,)``.
    SUCCESS = "event.core.success"
    #: After a successful run: ``(step, seconds_spent_in_run)``.
    PROCESSING_TIME = "event.core.processing_time"
    #: The worker killed the step after its timeout: ``(step, message)``.
    TIMEOUT = "event.core.timeout"
    #: The process running the step died with a non-zero exit code:
    #: ``(step, message)``.
    PROCESS_FAILURE = "event.core.process_failure"
