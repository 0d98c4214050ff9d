"""The execution summary printed at the end of every ``trun`` run, and the run's status code.

``summary(worker)`` turns what a worker did into the text a Luigi user knows::

    ===== Trun Execution Summary =====

    Scheduled 3 steps of which:
    * 1 complete ones were encountered:
        - 1 Extract(date=2026-11-23)
    * 2 ran successfully:
        - 2 Load(date=2026-11-23,2026-11-24)

    This progress looks :) because there were no failed steps or missing dependencies

    ===== Trun Execution Summary =====

It is built only from the worker's records, read duck-typed so any worker with
the same shapes works: ``_add_step_history`` (every ``(step, status,
runnable)`` the worker reported to the scheduler), ``_get_work_response_history``
(the ``get_work`` answers that gave no step, whose ``running_steps`` reveal
steps other workers were running), ``_scheduled_steps`` (step id → step) and ``_id``.

Hazards: classifying "left pending" steps walks ``_requires()`` of each such
step, so user code runs here once more; steps are grouped by ``step_family`` and
sorted by ``str(step)``. A :class:`TrunRunResult` decides its status when it
is made but writes ``summary_text`` on first use (sorting calls ``str()`` of
every step), from the history as it was when the result was made.
"""
from __future__ import annotations

import collections
import enum
import itertools
import operator
from collections.abc import Iterable
from typing import Any

from trun.parameter import IntParameter
from trun.step import Config, Step

__all__ = ["execution_summary", "TrunStatusCode", "TrunRunResult", "summary"]

StepSets = dict[str, set[Any]]


class execution_summary(Config):
    """``[execution_summary]`` settings."""

    summary_length = IntParameter(
        default=5,
        description="How many step families to list per category before '...' (0 = no limit)")


class TrunStatusCode(enum.Enum):
    """Overall outcome of a run: ``value`` is ``(smiley, reason)`` as printed in the summary."""

    SUCCESS = (":)", "there were no failed steps or missing dependencies")
    SUCCESS_WITH_RETRY = (":)", "there were failed steps but they all succeeded in a retry")
    FAILED = (":(", "there were failed steps")
    FAILED_AND_SCHEDULING_FAILED = (":(", "there were failed steps and steps whose scheduling failed")
    SCHEDULING_FAILED = (":(", "there were steps whose scheduling failed")
    NOT_RUN = (":|", "there were steps that were not granted run permission by the scheduler")
    MISSING_EXT = (":|", "there were missing external dependencies")


class TrunRunResult:
    """What ``trun.build(..., detailed_summary=True)`` returns.

    Attributes: ``worker``; ``summary_text`` (the full execution summary);
    ``status`` (a ``TrunStatusCode``); ``one_line_summary`` ("This progress looks
    … because …"); ``scheduling_succeeded`` (False when scheduling or any step failed).

    The status is decided when the result is made; the text is written on
    first use of ``summary_text``, from what was recorded then (writing it
    means ``str()`` of every step, to sort them).
    """

    def __init__(self, worker: Any, worker_add_run_status: bool = True) -> None:
        self.worker = worker
        self._history = _history_copy(worker)
        self._partition: _Partition | None = None
        self._step_sets: StepSets | None = None
        self._external = _get_external_workers(worker)
        status = _all_succeeded(self._history)
        if status is None:
            partition = self._partition = _Partition(self._history)
            if partition.lists["still_pending_not_ext"] or self._external:
                # Explaining pending steps runs their _requires() now, as it always did.
                self._step_sets = partition.sets(self._external)
                status = _steps_status(self._step_sets)
            else:
                status = partition.status()
        self.status = status
        self._summary_length = execution_summary().summary_length
        self._summary_text: str | None = None
        self.one_line_summary = _create_one_line_summary(self.status)
        self.scheduling_succeeded = worker_add_run_status

    @property
    def summary_text(self) -> str:
        """The execution summary, as logged at the end of the run."""
        if self._summary_text is None:
            step_sets = self._step_sets
            if step_sets is None:
                partition = self._partition or _Partition(self._history)
                step_sets = self._step_sets = partition.sets(self._external)
            self._summary_text = _summary_wrap(_summary_format(step_sets, self._external, self._summary_length))
        return self._summary_text

    @summary_text.setter
    def summary_text(self, text: str) -> None:
        self._summary_text = text

    def __str__(self) -> str:
        return f"TrunRunResult with status {self.status}"

    def __repr__(self) -> str:
        return (f"TrunRunResult(status={self.status!r},worker={self.worker!r},"
                f"scheduling_succeeded={self.scheduling_succeeded!r})")


def summary(worker: Any) -> str:
    """Return the human-readable execution summary of what ``worker`` did."""
    external = _get_external_workers(worker)
    return _summary_wrap(_summary_format(_Partition(_history_copy(worker)).sets(external), external,
                                         execution_summary().summary_length))


# -- partitioning ----------------------------------------------------------------

# Printed in this order; "ever_failed" is computed but never printed.
_ORDERED_STATUSES = (
    "already_done",
    "completed",
    "ever_failed",
    "failed",
    "scheduling_error",
    "still_pending",
    "still_pending_ext",
    "run_by_other_worker",
    "upstream_failure",
    "upstream_missing_dependency",
    "upstream_run_by_other_worker",
    "upstream_scheduling_error",
    "not_run",
)
# The sub-categories of "still_pending", printed indented under it.
_PENDING_SUB_STATUSES = frozenset(_ORDERED_STATUSES[_ORDERED_STATUSES.index("still_pending_ext"):])
_COMMENTS = {
    "already_done": "complete ones were encountered",
    "completed": "ran successfully",
    "failed": "failed",
    "scheduling_error": "failed scheduling",
    "still_pending": "were left pending, among these",
    "still_pending_ext": "were missing external dependencies",
    "run_by_other_worker": "were being run by another worker",
    "upstream_failure": "had failed dependencies",
    "upstream_missing_dependency": "had missing dependencies",
    "upstream_run_by_other_worker": "had dependencies that were being run by other worker",
    "upstream_scheduling_error": "had dependencies whose scheduling failed",
    "not_run": "was not granted run permission by the scheduler",
}


class _Partition:
    """The worker's steps sorted into the summary's categories by the statuses it reported.

    One pass over (a copy of) ``_add_step_history``; each category is a list of distinct
    steps (equal steps, as ``Step.__eq__`` says, counted once; the step object
    kept is the one the category's first matching report named, as a set
    built from the history in order would keep).
    """

    def __init__(self, history: list[tuple[Any, Any, Any]]) -> None:
        firsts = self._first_reports(history, by_step_id=True) or self._first_reports(history, by_step_id=False)
        first_done, first_failed, first_unknown, first_pending_ext, first_pending_run = firsts
        completed = []
        already_done = []
        for key, step in first_done.items():
            if key in first_pending_run or key in first_pending_ext:
                completed.append(step)
            else:
                already_done.append(step)
        # A pending step is "completed" once it was also reported DONE.
        self.lists = {
            "completed": completed,
            "already_done": already_done,
            "ever_failed": list(first_failed.values()),
            "failed": [step for key, step in first_failed.items()
                       if key not in first_done or (key not in first_pending_run and key not in first_pending_ext)],
            "scheduling_error": list(first_unknown.values()),
            "still_pending_ext": [step for key, step in first_pending_ext.items()
                                  if key not in first_failed and key not in first_done],
            "still_pending_not_ext": [step for key, step in first_pending_run.items()
                                      if key not in first_failed and key not in first_done],
        }

    @staticmethod
    def _first_reports(history: list[tuple[Any, Any, Any]], by_step_id: bool) -> list[dict[Any, Any]] | None:
        """Per kind of report (DONE, FAILED, UNKNOWN, PENDING not runnable, PENDING runnable): key -> first step.

        Keys are the steps themselves, or with ``by_step_id`` their ids, which
        is the same when each id belongs to one class whose equality is
        Step's own (None otherwise): a str hashes in C, a step's ``__hash__``
        is a Python call, and there are two reports per step. Dicts rather
        than a record per step: allocating 100,000 small objects here would
        set off a collection of the whole step graph, just unfrozen.
        """
        if by_step_id and any(cls.__eq__ is not Step.__eq__ or cls.__hash__ is not Step.__hash__
                              for cls in set(map(type, map(_step_of, history)))):
            return None
        firsts: list[dict[Any, Any]] = [{}, {}, {}, {}, {}]
        first_done, first_failed, first_unknown, first_pending_ext, first_pending_run = firsts
        class_of: dict[str, type] = {}
        key: Any
        for step, status, runnable in history:
            if by_step_id:
                key = step.step_id
                cls = type(step)
                if class_of.setdefault(key, cls) is not cls:
                    return None
            else:
                key = step
            if status == "PENDING":
                (first_pending_run if runnable else first_pending_ext).setdefault(key, step)
            elif status == "DONE":
                first_done.setdefault(key, step)
            elif status == "FAILED":
                first_failed.setdefault(key, step)
            elif status == "UNKNOWN":
                first_unknown.setdefault(key, step)
        return firsts

    def status(self) -> TrunStatusCode:
        """``_steps_status`` of the sets, when no step is left pending for want of explanation."""
        lists = self.lists
        return _steps_status({
            "ever_failed": lists["ever_failed"], "failed": lists["failed"],
            "scheduling_error": lists["scheduling_error"], "not_run": lists["still_pending_not_ext"],
            "still_pending_ext": lists["still_pending_ext"]})

    def sets(self, external: dict[str, set[Any]]) -> StepSets:
        """Every category as a set, including the explained pending steps (their ``_requires()`` runs)."""
        sets: StepSets = {key: set(steps) for key, steps in self.lists.items()}
        for key in ("upstream_failure", "upstream_missing_dependency", "upstream_run_by_other_worker",
                    "upstream_scheduling_error", "not_run"):
            sets[key] = set()
        sets["run_by_other_worker"] = set().union(*external.values())
        _populate_unknown_statuses(sets)
        return sets


_status_of = operator.itemgetter(1)
_step_of = operator.itemgetter(0)
_step_id_of = operator.attrgetter("step_id")
_is_pending = "PENDING".__eq__
_is_done = "DONE".__eq__


def _all_succeeded(history: list[tuple[Any, Any, Any]]) -> TrunStatusCode | None:
    """SUCCESS when every report was PENDING or DONE and every pending step was then DONE, else None.

    The usual run, decided with a few passes in C over the history instead
    of sorting every step into its category (see :class:`_Partition`, which
    decides everything else). Steps are matched by id, which is what
    ``Step.__eq__`` compares, so only when no two classes of the run share a
    family (and so ids) and none has an equality of its own.
    """
    columns = getattr(history, "columns", None)  # a ReportHistory: no triple made per report
    if columns is not None:
        steps, statuses = columns()
    else:
        steps, statuses = list(map(_step_of, history)), list(map(_status_of, history))
    if not set(statuses) <= {"PENDING", "DONE"}:
        return None
    classes = set(map(type, steps))
    if any(cls.__eq__ is not Step.__eq__ or cls.__hash__ is not Step.__hash__ for cls in classes):
        return None
    if len({cls.get_step_family() for cls in classes}) != len(classes):
        return None
    step_ids = list(map(_step_id_of, steps))
    done = set(itertools.compress(step_ids, map(_is_done, statuses)))
    # issuperset() of an iterator: no second set of (about) every id of the run.
    if not done.issuperset(itertools.compress(step_ids, map(_is_pending, statuses))):
        return None
    return TrunStatusCode.SUCCESS


def _history_copy(worker: Any) -> Any:
    """The worker's ``(step, status, runnable)`` reports as they are now, read like a list."""
    history = worker._add_step_history
    copy = getattr(history, "copy", None)  # a ReportHistory, or a list a test put there
    return copy() if copy is not None else list(history)


def _root_step(worker: Any) -> Any:
    """The first step the worker scheduled, i.e. the root step of the run."""
    return worker._add_step_history[0][0]


def _populate_unknown_statuses(sets: StepSets) -> None:
    """Explain every runnable step left pending: fill the ``upstream_*`` and ``not_run`` sets."""
    visited: set[Any] = set()
    for step in list(sets["still_pending_not_ext"]):
        _explain_pending(sets, step, visited)


def _explain_pending(sets: StepSets, step: Any, visited: set[Any]) -> None:
    # Depth first, so a dependency is classified before the steps that need it.
    visited.add(step)
    if step not in sets["still_pending_not_ext"]:
        return
    reasons = set()
    for dep in step._requires():
        if dep not in visited:
            _explain_pending(sets, dep, visited)
        if dep in sets["ever_failed"] or dep in sets["upstream_failure"]:
            reasons.add("upstream_failure")
        if dep in sets["still_pending_ext"] or dep in sets["upstream_missing_dependency"]:
            reasons.add("upstream_missing_dependency")
        if dep in sets["run_by_other_worker"] or dep in sets["upstream_run_by_other_worker"]:
            reasons.add("upstream_run_by_other_worker")
        if dep in sets["scheduling_error"]:
            reasons.add("upstream_scheduling_error")
    for reason in reasons:
        sets[reason].add(step)
    if not reasons and step not in sets["run_by_other_worker"]:
        sets["not_run"].add(step)


def _get_external_workers(worker: Any) -> dict[str, set[Any]]:
    """Steps of this run that ``get_work`` reported as running under another worker, by worker id."""
    by_worker: dict[str, set[Any]] = collections.defaultdict(set)
    for response in worker._get_work_response_history:
        if response.get("step_id") is not None:
            continue
        for running in response.get("running_steps") or ():
            other_worker = running.get("worker")
            other_step = worker._scheduled_steps.get(running.get("step_id"))
            if other_worker == worker._id or not other_step:
                continue
            by_worker[other_worker].add(other_step)
    return by_worker


def _summary_dict(worker: Any) -> StepSets:
    return _Partition(_history_copy(worker)).sets(_get_external_workers(worker))


def _steps_status(sets: StepSets) -> TrunStatusCode:
    """The ``TrunStatusCode`` for a partition; the first matching condition wins."""
    if sets["ever_failed"]:
        if not sets["failed"]:
            return TrunStatusCode.SUCCESS_WITH_RETRY
        if sets["scheduling_error"]:
            return TrunStatusCode.FAILED_AND_SCHEDULING_FAILED
        return TrunStatusCode.FAILED
    if sets["scheduling_error"]:
        return TrunStatusCode.SCHEDULING_FAILED
    if sets["not_run"]:
        return TrunStatusCode.NOT_RUN
    if sets["still_pending_ext"]:
        return TrunStatusCode.MISSING_EXT
    return TrunStatusCode.SUCCESS


def _create_one_line_summary(status: TrunStatusCode) -> str:
    smiley, reason = status.value
    return f"This progress looks {smiley} because {reason}"


# -- text -------------------------------------------------------------------------

def _group_by_family(steps: Iterable[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for step in steps:
        grouped.setdefault(step.step_family, []).append(step)
    return grouped


def _count(status: str, grouped: dict[str, dict[str, list[Any]]]) -> int:
    if status == "still_pending":
        return _count("still_pending_ext", grouped) + _count("still_pending_not_ext", grouped)
    return sum(len(steps) for steps in grouped[status].values())


def _summary_format(sets: StepSets, external: dict[str, set[Any]], limit: int) -> str:
    grouped = {status: _group_by_family(steps) for status, steps in sets.items()}
    num_all = sum(len(sets[key]) for key in ("already_done", "completed", "failed", "scheduling_error",
                                             "still_pending_ext", "still_pending_not_ext"))
    if num_all == 0:
        return "Did not schedule any steps"

    out = [f"Scheduled {num_all} steps of which:\n"]
    for status in _ORDERED_STATUSES:
        if status == "ever_failed":
            continue
        count = _count(status, grouped)
        if not count:
            continue
        indent = "    " if status in _PENDING_SUB_STATUSES else ""
        out.append(f"{indent}* {count} {_COMMENTS[status]}:\n")
        if status != "still_pending":
            out.append(_family_lines(grouped[status], status in _PENDING_SUB_STATUSES, limit) + "\n")

    if external:
        out.append("\nThe other workers were:\n")
        for index, (worker_id, steps) in enumerate(external.items()):
            if 3 < index < len(external) - 1:
                out.append(f"    and {len(external) - index} other workers")
                break
            out.append(f"    - {worker_id} ran {len(steps)} steps\n")
        out.append("\n")

    ran_nothing = num_all == sum(len(sets[key]) for key in (
        "already_done", "scheduling_error", "still_pending_ext", "still_pending_not_ext"))
    if ran_nothing:
        if not external:
            out.append("\n")
        out.append("Did not run any steps")
    out.append("\n" + _create_one_line_summary(_steps_status(sets)))
    return "".join(out)


def _summary_wrap(text: str) -> str:
    rule = "===== Trun Execution Summary ====="
    return f"\n{rule}\n\n{text}\n\n{rule}\n"


def _family_lines(by_family: dict[str, list[Any]], extra_indent: bool, limit: int) -> str:
    """One line per step family (at most ``limit``, 0: all): count and a compressed view of the parameters."""
    prefix = " " * (8 if extra_indent else 4)
    lines: list[str] = []
    for family in sorted(by_family):
        if limit > 0 and len(lines) >= limit:
            lines.append(prefix + "...")
            break
        steps = sorted(by_family[family], key=str)
        lines.append(prefix + _family_line(family, steps))
    return "\n".join(lines)


def _family_line(family: str, steps: list[Any]) -> str:
    first = steps[0]
    params = first.get_params()
    n = len(steps)
    if not params:
        return f"- {n} {family}()"
    name_length = sum(len(name) for name, _ in params)
    if (name_length > 60 or len(str(first)) > 200
            or (n == 2 and len(params) > 1 and (name_length > 40 or len(str(first)) > 100))):
        # Keep a single monstrous step from flooding the summary.
        return f"- {n} {family}(...)"
    if len(params) == 1:
        name, param = params[0]
        values = {getattr(step, name) for step in steps}
        low, high = _contiguous_range(values, param)
        if low is not None and high is not None and len(values) > 3:
            shown = f"{param.serialize(low)}...{param.serialize(high)}"
        else:
            shown = _comma_list(steps, name, param)
        return f"- {n} {family}({name}={shown})"

    varying = [(name, param) for name, param in params
               if len({getattr(step, name) for step in steps}) > 1]
    if len(varying) == 1:
        (vary_name, vary_param), = varying
        values = {getattr(step, vary_name) for step in steps}
        low, high = _contiguous_range(values, vary_param)
        if low is not None and high is not None and len(values) > 2:
            parts = []
            for name, param in params:
                if name == vary_name:
                    parts.append(f"{name}={param.serialize(low)}...{param.serialize(high)}")
                else:
                    parts.append(f"{name}={param.serialize(getattr(first, name))}")
            return f"- {n} {family}({', '.join(parts)})"
    if n == 1:
        return f"- 1 {first}"
    if n == 2:
        return f"- 2 {first} and {steps[1]}"
    return f"- {n} {first} ..."


def _contiguous_range(values: set[Any], param: Any) -> tuple[Any, Any]:
    """``(first, last)`` if ``values`` form one unbroken run under ``param.next_in_enumeration``."""
    try:
        successors = {param.next_in_enumeration(value) for value in values}
    except TypeError:  # e.g. None among the values: no natural order
        return None, None
    starts = values - successors
    past_end = successors - values
    if len(starts) == 1 and len(past_end) == 1:
        for value in values:
            if {param.next_in_enumeration(value)} == past_end:
                return next(iter(starts)), value
    return None, None


def _comma_list(steps: list[Any], name: str, param: Any) -> str:
    row = ""
    for index, step in enumerate(steps):
        if (len(row) >= 30 and index > 2 and index != len(steps) - 1) or len(row) > 200:
            row += "..."
            break
        row += param.serialize(getattr(step, name))
        if index < len(steps) - 1:
            row += ","
    return row
