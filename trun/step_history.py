"""Step history: the interface through which the scheduler reports what happened to each step.

The scheduler calls three hooks as steps change status (Luigi's ``TaskHistory``
renamed): :meth:`StepHistory.step_scheduled` (PENDING),
:meth:`StepHistory.step_started` (RUNNING, with the worker's host) and
:meth:`StepHistory.step_finished` (DONE or FAILED). The object passed is the
scheduler's own record of the step; a history reads its ``id``, ``family`` and
``params`` only.

Which history is used: ``Scheduler(step_history_impl=...)`` if given, else
:class:`trun.db_step_history.DbStepHistory` when ``[scheduler]
record_step_history = true``, else nothing is recorded.

Hazards: the hooks run on the scheduler's thread, in the middle of ``add_step``
and ``get_work``. An implementation must return quickly (queue the work, as
``DbStepHistory`` does) and must not keep the record object: the scheduler
changes it in place afterwards.
"""
from __future__ import annotations

import abc
from typing import Any

__all__ = ["NopHistory", "StepHistory", "StoredStep"]


class StoredStep:
    """What a history keeps about one step between events: its status, host and database row.

    ``step`` is the scheduler's record (anything with ``id``, ``family`` and ``params``).
    """

    def __init__(self, step: Any, status: str, host: str | None = None) -> None:
        self._step = step
        self.status = status
        self.record_id: int | None = None
        self.host = host

    @property
    def step_family(self) -> str:
        """The step's family (class name, with namespace)."""
        return self._step.family

    @property
    def parameters(self) -> dict[str, Any]:
        """The step's parameters as the worker reported them (strings)."""
        return self._step.params


class StepHistory(abc.ABC):
    """Receives a step's status changes from the scheduler. Subclass it to record them somewhere."""

    @abc.abstractmethod
    def step_scheduled(self, step: Any) -> None:
        """``step`` became PENDING (a worker scheduled it)."""

    @abc.abstractmethod
    def step_finished(self, step: Any, successful: bool) -> None:
        """``step`` became DONE (``successful``) or FAILED."""

    @abc.abstractmethod
    def step_started(self, step: Any, worker_host: str | None) -> None:
        """``step`` started RUNNING on a worker on ``worker_host``."""


class NopHistory(StepHistory):
    """A history that records nothing."""

    def step_scheduled(self, step: Any) -> None:
        pass

    def step_finished(self, step: Any, successful: bool) -> None:
        pass

    def step_started(self, step: Any, worker_host: str | None) -> None:
        pass
