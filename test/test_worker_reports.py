"""The reports a worker sends its scheduler, field by field, for plain and for customised step classes.

The worker caches facts about a step class (family, resources, retry policy,
owners, parameter visibilities...) when the class leaves them at Step's
defaults. These tests build the expected report from each step's own public
API, so a cache that answers differently from the step itself shows up here,
on the in-process path (``Scheduler._add_local_reports``) and on the path of
any other scheduler (``add_steps``/``add_step``).
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

import trun
from trun.scheduler import Scheduler, StepReport
from trun.step_status import DONE, PENDING
from trun.worker import Worker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _expected_scheduling_report(step: trun.Step, status: Any, deps: list[trun.Step] | None,
                                runnable: bool) -> dict[str, Any]:
    report = {
        "step_id": step.step_id, "status": status,
        "deps": None if deps is None else [dep.step_id for dep in deps],
        "runnable": runnable, "priority": step.priority, "resources": step.process_resources(),
        "params": step.to_str_params(), "family": step.step_family, "module": step.step_module,
        "batchable": step.batchable,
        "retry_policy_dict": {"retry_count": step.retry_count, "disable_hard_timeout": step.disable_hard_timeout,
                              "disable_window": step.disable_window},
        "accepts_messages": step.accepts_messages, "owners": step._owner_list(),
    }
    if report["params"]:
        report["param_visibilities"] = step._get_param_visibilities()
    return report


def _expected_result_report(step: trun.Step, status: Any) -> dict[str, Any]:
    report = {
        "step_id": step.step_id, "status": status, "expl": "null", "resources": step.process_resources(),
        "runnable": None, "params": step.to_str_params(), "family": step.step_family,
        "module": step.step_module, "new_deps": [], "assistant": False,
        "retry_policy_dict": {"retry_count": step.retry_count, "disable_hard_timeout": step.disable_hard_timeout,
                              "disable_window": step.disable_window},
        "owners": step._owner_list(),
    }
    if report["params"]:
        report["param_visibilities"] = step._get_param_visibilities()
    return report


def _define_steps(done: set[str]) -> tuple[type[trun.Step], type[trun.Step], type[trun.Step]]:
    class RpPlain(trun.Step):
        i = trun.IntParameter()
        secret = trun.Parameter(default="s", visibility=trun.parameter.ParameterVisibility.PRIVATE)
        hidden = trun.Parameter(default="h", visibility=trun.parameter.ParameterVisibility.HIDDEN)
        note = trun.Parameter(default="n", significant=False)

        def complete(self) -> bool:
            return self.step_id in done

        def run(self) -> None:
            done.add(self.step_id)

    class RpFancy(trun.Step):
        step_namespace = "rp_ns"
        priority = 5
        resources = {"rp_res": 1}
        max_batch_size = 1  # batchable, but run one by one: the reports stay one per step
        day = trun.IntParameter(batch_method=max)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.priority = 7 + self.day  # an instance attribute shadows the class's

        @property
        def retry_count(self) -> int:
            return 3 + self.day

        @property
        def disable_window_seconds(self) -> int:  # the deprecated spelling, still honoured
            return 60

        @property
        def owner_email(self) -> str:
            return "a@example.com,b@example.com"

        @property
        def accepts_messages(self) -> bool:
            return True

        def process_resources(self) -> dict[str, int]:
            return {"rp_res": 1, f"rp_extra_{self.day}": 1}

        def requires(self) -> list[trun.Step]:
            return [RpPlain(i=self.day), RpPlain(i=self.day + 1)]

        def complete(self) -> bool:
            return self.step_id in done

        def run(self) -> None:
            done.add(self.step_id)

    class RpRoot(trun.Step):
        owner_email = ["c@example.com"]  # a plain class attribute, not a property

        @property
        def step_family(self) -> str:  # type: ignore[override]
            return "RpRootFamily"

        def requires(self) -> list[trun.Step]:
            return [RpFancy(day=1), RpFancy(day=2), RpPlain(i=9)]

        def complete(self) -> bool:
            return self.step_id in done

        def run(self) -> None:
            done.add(self.step_id)

    return RpPlain, RpFancy, RpRoot


def _expected_reports(root: trun.Step) -> list[dict[str, Any]]:
    fancy1, fancy2, plain9 = root.requires()
    plains = {p.step_id: p for f in (fancy1, fancy2) for p in f.requires()}
    plains[plain9.step_id] = plain9
    scheduling = [_expected_scheduling_report(root, PENDING, root.deps(), True)]
    scheduling += [_expected_scheduling_report(s, PENDING, s.deps(), True) for s in (fancy1, fancy2)]
    scheduling += [_expected_scheduling_report(s, PENDING, [], True) for s in plains.values()]
    results = [_expected_result_report(s, DONE) for s in (root, fancy1, fancy2, *plains.values())]
    return scheduling + results


def _as_arguments(report: StepReport | dict[str, Any]) -> dict[str, Any]:
    """Every ``add_step`` argument (but ``worker``) of a report, those it leaves out at their default."""
    given = report._asdict() if isinstance(report, StepReport) else report
    full = {**StepReport("")._asdict(), **given}
    if full["owners"] is not None:
        full["owners"] = list(full["owners"])  # any sequence: it is JSON on the wire
    return full


def _by_step_and_kind(reports: list[Any]) -> dict[tuple[str, bool], dict[str, Any]]:
    """Reports keyed by step and by kind (a scheduling report has no ``expl``, a result report has one)."""
    full = [_as_arguments(r) for r in reports]
    return {(r["step_id"], r["expl"] is not None): r for r in full}


class _Recording:
    """A scheduler other than the in-process one (as a remote one is), recording every report it gets."""

    def __init__(self, real: Scheduler, received: list[dict[str, Any]]) -> None:
        self._real = real
        self._received = received

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def add_steps(self, worker: str, steps: list[dict[str, Any]]) -> None:
        self._received.extend(copy.deepcopy(steps))
        self._real.add_steps(worker=worker, steps=steps)

    def add_step(self, worker: str, **kwargs: Any) -> None:
        self._received.append(copy.deepcopy(kwargs))
        self._real.add_step(worker=worker, **kwargs)

    def get_work(self, worker: str, host: Any = None, assistant: bool = False, current_steps: Any = None,
                 reports: Any = None) -> dict[str, Any]:
        self._received.extend(copy.deepcopy(reports or []))
        return self._real.get_work(worker=worker, host=host, assistant=assistant, current_steps=current_steps,
                                   reports=reports)


def test_in_process_reports_match_what_each_step_says_about_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    done: set[str] = set()
    _, _, RpRoot = _define_steps(done)
    received: list[dict[str, Any]] = []
    original = Scheduler._add_local_reports

    def recording(self: Scheduler, worker: str, steps: list[StepReport]) -> None:
        received.extend(copy.deepcopy(steps))
        original(self, worker, steps)

    monkeypatch.setattr(Scheduler, "_add_local_reports", recording)
    with Worker(scheduler=Scheduler(), wait_interval=0.01, wait_jitter=0) as w:
        assert w.add(RpRoot())
        assert w.run()
    expected = _expected_reports(RpRoot())
    assert len(received) == len(expected)
    assert _by_step_and_kind(received) == _by_step_and_kind(expected)


def test_reports_to_any_other_scheduler_match_too() -> None:
    done: set[str] = set()
    _, _, RpRoot = _define_steps(done)
    real = Scheduler()
    received: list[dict[str, Any]] = []
    with Worker(scheduler=_Recording(real, received), worker_id="w", wait_interval=0.01, wait_jitter=0) as w:
        assert w.add(RpRoot())
        assert w.run()
    expected = _expected_reports(RpRoot())
    assert len(received) == len(expected)
    assert _by_step_and_kind(received) == _by_step_and_kind(expected)


def test_a_class_changed_between_runs_is_reported_with_its_new_values() -> None:
    # The worker caches facts per class; changing the class must not leave them stale.
    done: set[str] = set()
    RpPlain, _, _ = _define_steps(done)
    received: list[dict[str, Any]] = []
    with Worker(scheduler=_Recording(Scheduler(), received), wait_interval=0.01, wait_jitter=0) as w:
        assert w.add(RpPlain(i=1))
        RpPlain.step_namespace = "rp_changed"
        RpPlain.retry_count = property(lambda self: 11)  # type: ignore[assignment]
        assert w.add(RpPlain(i=2))
    assert [r["family"] for r in received] == ["RpPlain", "rp_changed.RpPlain"]
    assert [r["retry_policy_dict"]["retry_count"] for r in received] == [None, 11]
