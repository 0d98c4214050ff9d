"""Tests of trun.worker: scheduling decisions, the run loop, keep-alive, signals, messages.

Steps run in the test process here (one worker process, no timeout); child
processes are covered by test_worker_multiprocess.py and dynamic dependencies
by test_dynamic_deps.py. Step classes are defined inside the tests (unique
names) so that the global registry does not leak between tests.
"""
from __future__ import annotations

import datetime
import email.header
import email.message
import logging
import os
import signal
import socketserver
import threading
import time
from typing import Any

import pytest
from conftest import wait_until

import trun
from trun.event import Event
from trun.scheduler import Scheduler
from trun.step_status import DISABLED, DONE, FAILED, PENDING, UNKNOWN
from trun.worker import StepException, Worker

# Many steps here run for their side effects only, without outputs.
pytestmark = pytest.mark.filterwarnings("ignore:Step .* without outputs:UserWarning")


def make_worker(scheduler: Any = None, **kwargs: Any) -> Worker:
    kwargs.setdefault("wait_interval", 0.01)
    kwargs.setdefault("wait_jitter", 0)
    return Worker(scheduler=scheduler if scheduler is not None else Scheduler(), **kwargs)


def statuses(scheduler: Scheduler, status: str) -> set[str]:
    return set(scheduler.step_list(status, ""))


class RecordingScheduler:
    """A real Scheduler that records the calls it gets; ``hide`` removes methods (e.g. add_steps)."""

    def __init__(self, hide: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.real = Scheduler(**kwargs)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._hide = hide

    def __getattr__(self, name: str) -> Any:
        if name in self._hide:
            raise AttributeError(name)
        method = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return method(*args, **kwargs)
        return call

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class RecordingReporter:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_scheduled(self, step: Any, status: Any, runnable: Any) -> None:
        self.events.append(("scheduled", str(step), status, runnable))

    def on_started(self, step: Any) -> None:
        self.events.append(("started", str(step)))

    def on_finished(self, step: Any, status: Any) -> None:
        self.events.append(("finished", str(step), status))


# -- scheduling ------------------------------------------------------------------


def test_runs_dependencies_before_the_step_that_requires_them() -> None:
    order: list[str] = []

    class WkOrderLeaf(trun.Step):
        def complete(self) -> bool:
            return "leaf" in order

        def run(self) -> None:
            order.append("leaf")

    class WkOrderRoot(trun.Step):
        def requires(self) -> Any:
            return WkOrderLeaf()

        def complete(self) -> bool:
            return "root" in order

        def run(self) -> None:
            order.append("root")

    with make_worker() as w:
        assert w.add(WkOrderRoot())
        assert w.run()
    assert order == ["leaf", "root"]


def test_complete_step_is_reported_done_and_not_run() -> None:
    ran: list[str] = []

    class WkAlreadyDone(trun.Step):
        def complete(self) -> bool:
            return True

        def run(self) -> None:
            ran.append("x")

    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(WkAlreadyDone())
        assert w.run()
    assert ran == []
    assert statuses(sch, DONE) == {WkAlreadyDone().step_id}


def test_add_reports_every_step_with_its_scheduling_decision() -> None:
    class WkHistLeaf(trun.Step):
        def complete(self) -> bool:
            return True

    class WkHistRoot(trun.Step):
        def requires(self) -> Any:
            return WkHistLeaf()

        def complete(self) -> bool:
            return False

    with make_worker() as w:
        w.add(WkHistRoot())
    assert w._add_step_history == [(WkHistRoot(), PENDING, True), (WkHistLeaf(), DONE, False)]
    assert w._scheduled_steps == {WkHistRoot().step_id: WkHistRoot(), WkHistLeaf().step_id: WkHistLeaf()}


def test_add_rejects_an_object_that_is_not_a_step() -> None:
    with make_worker() as w:
        with pytest.raises(StepException, match="Can not schedule non-step"):
            w.add("not a step")  # type: ignore[arg-type]


def test_complete_raising_reports_unknown_and_fires_dependency_missing() -> None:
    missing: list[Any] = []

    class WkBrokenComplete(trun.Step):
        def complete(self) -> bool:
            raise OSError("storage is down")

    WkBrokenComplete.event_handler(Event.DEPENDENCY_MISSING)(missing.append)
    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(WkBrokenComplete()) is False
        assert w.run()
    assert statuses(sch, UNKNOWN) == {WkBrokenComplete().step_id}
    assert missing == [WkBrokenComplete()]


def test_complete_returning_non_boolean_is_a_scheduling_error(caplog: pytest.LogCaptureFixture) -> None:
    class WkStringComplete(trun.Step):
        def complete(self) -> Any:
            return "yes"

    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(WkStringComplete()) is False
    assert "Return value of Step.complete() must be boolean (was 'yes')" in caplog.text
    assert statuses(sch, UNKNOWN) == {WkStringComplete().step_id}


def test_requires_raising_reports_unknown_and_fires_broken_step() -> None:
    broken: list[Any] = []

    class WkBrokenRequires(trun.Step):
        def requires(self) -> Any:
            raise ValueError("bad requires")

    WkBrokenRequires.event_handler(Event.BROKEN_STEP)(lambda step, exc: broken.append((step, str(exc))))
    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(WkBrokenRequires()) is False
        assert w.run()
    assert statuses(sch, UNKNOWN) == {WkBrokenRequires().step_id}
    assert broken == [(WkBrokenRequires(), "bad requires")]


def test_requiring_a_target_is_a_scheduling_error_that_suggests_external_step(
        caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    class WkRequiresTarget(trun.Step):
        def requires(self) -> Any:
            return trun.LocalTarget(str(tmp_path / "input.txt"))

    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(WkRequiresTarget()) is False
    assert "WkRequiresTarget" in caplog.text and "ExternalStep" in caplog.text
    assert statuses(sch, UNKNOWN) == {WkRequiresTarget().step_id}


def test_incomplete_external_step_is_pending_and_not_runnable(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    class WkMissingInput(trun.ExternalStep):
        def complete(self) -> bool:
            return False

    class WkNeedsInput(trun.Step):
        def requires(self) -> Any:
            return WkMissingInput()

        def run(self) -> None:
            ran.append("x")

    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(WkNeedsInput())
        assert w.run()
    assert ran == []
    assert "does not exist (yet?)" in caplog.text
    assert (WkMissingInput(), PENDING, False) in w._add_step_history


def test_retry_external_steps_runs_the_check_again_and_unblocks_dependents() -> None:
    checks: list[int] = []
    ran: list[str] = []

    class WkLateInput(trun.ExternalStep):
        def complete(self) -> bool:
            checks.append(1)
            return len(checks) > 1  # appears after the first check

    class WkWaitsForInput(trun.Step):
        def requires(self) -> Any:
            return WkLateInput()

        def complete(self) -> bool:
            return bool(ran)

        def run(self) -> None:
            ran.append("x")

    with make_worker(retry_external_steps=True) as w:
        assert w.add(WkWaitsForInput())
        assert w.run()
    assert ran == ["x"]


def test_disabled_step_is_reported_disabled_and_not_run() -> None:
    ran: list[str] = []

    class WkDisabled(trun.Step):
        disabled = True

        def run(self) -> None:
            ran.append("x")

    sch = Scheduler()
    with make_worker(sch) as w:
        w.add(WkDisabled())
        w.run()
    assert ran == []
    assert statuses(sch, DISABLED) == {WkDisabled().step_id}


def test_step_limit_reports_steps_beyond_the_limit_as_unknown() -> None:
    class WkLimited(trun.Step):
        i = trun.IntParameter()

        def requires(self) -> Any:
            return WkLimited(self.i - 1) if self.i > 0 else []

        def complete(self) -> bool:
            return False

    sch = Scheduler()
    with make_worker(sch, step_limit=2) as w:
        w.add(WkLimited(5))
    assert [status for _, status, _ in w._add_step_history] == [PENDING, PENDING, UNKNOWN]
    assert statuses(sch, UNKNOWN) == {WkLimited(3).step_id}


def test_scheduler_without_bulk_add_steps_gets_one_add_step_per_step() -> None:
    class WkSingleAdds(trun.Step):
        i = trun.IntParameter()

        def requires(self) -> Any:
            return [WkSingleAdds(self.i - 1)] if self.i > 0 else []

        def complete(self) -> bool:
            return False

    sch = RecordingScheduler(hide=("add_steps",))
    with make_worker(sch) as w:
        assert w.add(WkSingleAdds(2))
    assert sch.names().count("add_step") == 3
    assert statuses(sch.real, PENDING) == {WkSingleAdds(i).step_id for i in range(3)}


def test_scheduler_with_bulk_add_steps_gets_the_reports_in_one_call() -> None:
    class WkBulkAdds(trun.Step):
        i = trun.IntParameter()

        def requires(self) -> Any:
            return [WkBulkAdds(self.i - 1)] if self.i > 0 else []

        def complete(self) -> bool:
            return False

    sch = RecordingScheduler()
    with make_worker(sch) as w:
        assert w.add(WkBulkAdds(2))
    assert sch.names() == ["add_steps"]
    assert len(sch.calls[0][1]["steps"]) == 3


def test_chain_of_10000_steps_is_scheduled_and_run_without_recursion() -> None:
    done: set[int] = set()

    class WkLongChain(trun.Step):
        i = trun.IntParameter()

        def requires(self) -> Any:
            return [WkLongChain(self.i - 1)] if self.i > 0 else []

        def complete(self) -> bool:
            return self.i in done

        def run(self) -> None:
            done.add(self.i)

    with make_worker() as w:
        assert w.add(WkLongChain(9999))
        assert w.run()
    assert len(done) == 10000


def test_worker_keeps_only_the_get_work_answers_without_a_step() -> None:
    # The execution summary reads only those; a record per step run is memory that grows with the run.
    done: set[int] = set()

    class WkHistoryLeaf(trun.Step):
        i = trun.IntParameter()

        def complete(self) -> bool:
            return self.i in done

        def run(self) -> None:
            done.add(self.i)

    with make_worker() as w:
        assert w.add_all([WkHistoryLeaf(i) for i in range(50)])
        assert w.run()
    assert len(done) == 50
    assert w._get_work_response_history == [{"step_id": None, "running_steps": ()}]


def test_report_history_reads_like_the_list_of_triples_it_was_given() -> None:
    from trun.worker import ReportHistory

    class WkHistoryItem(trun.Step):
        i = trun.IntParameter()

    history = ReportHistory()
    triples = [(WkHistoryItem(1), PENDING, True), (WkHistoryItem(2), DONE, False),
               (WkHistoryItem(1), DONE, None), (WkHistoryItem(3), "SOMETHING ELSE", True)]
    for triple in triples:
        history.append(triple)
    assert list(history) == triples
    assert history == triples
    assert len(history) == 4 and bool(history)
    assert history[1] == triples[1] and history[-1] == triples[-1]
    assert not ReportHistory()


def test_report_history_columns_are_the_steps_and_statuses_in_report_order() -> None:
    from trun.worker import ReportHistory

    class WkColumnItem(trun.Step):
        i = trun.IntParameter()

    history = ReportHistory()
    triples = [(WkColumnItem(1), PENDING, True), (WkColumnItem(2), DONE, False), (WkColumnItem(1), DONE, None)]
    for triple in triples:
        history.append(triple)
    steps, statuses = history.columns()
    assert steps == [WkColumnItem(1), WkColumnItem(2), WkColumnItem(1)]
    assert statuses == [PENDING, DONE, DONE]


def test_report_history_copy_keeps_the_reports_recorded_until_then() -> None:
    from trun.worker import ReportHistory

    class WkCopiedItem(trun.Step):
        i = trun.IntParameter()

    history = ReportHistory()
    history.record(WkCopiedItem(1), PENDING, True)
    copy = history.copy()
    history.record(WkCopiedItem(1), DONE, None)
    history.record(WkCopiedItem(2), "SOMETHING ELSE", False)
    assert copy == [(WkCopiedItem(1), PENDING, True)]
    copy.record(WkCopiedItem(3), DONE, False)
    assert len(history) == 3 and history[-1] == (WkCopiedItem(2), "SOMETHING ELSE", False)


def test_cache_step_completion_skips_complete_of_finished_dependencies() -> None:
    calls: list[str] = []

    class WkCachedDep(trun.Step):
        def complete(self) -> bool:
            calls.append("dep")
            return True

    class WkCachedRoot(trun.Step):
        def requires(self) -> Any:
            return WkCachedDep()

        def complete(self) -> bool:
            return False

    with make_worker(cache_step_completion=True) as w:
        w.add(WkCachedRoot())
        w.run()
    assert calls == ["dep"]  # the run-time check of the dependency used the cache


# -- running ---------------------------------------------------------------------


def test_failing_step_is_reported_failed_with_its_traceback() -> None:
    class WkFails(trun.Step):
        def run(self) -> None:
            raise RuntimeError("boom in run")

    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(WkFails())
        assert w.run() is False
    assert statuses(sch, FAILED) == {WkFails().step_id}
    assert "boom in run" in sch.fetch_error(WkFails().step_id)["error"]


def test_failed_dependency_keeps_the_dependent_from_running() -> None:
    ran: list[str] = []

    class WkFailingDep(trun.Step):
        def run(self) -> None:
            raise RuntimeError("no")

    class WkBlocked(trun.Step):
        def requires(self) -> Any:
            return WkFailingDep()

        def run(self) -> None:
            ran.append("x")

    with make_worker() as w:
        w.add(WkBlocked())
        assert w.run() is False
    assert ran == []


def test_on_failure_return_value_becomes_the_error_explanation() -> None:
    class WkCustomFailure(trun.Step):
        def run(self) -> None:
            raise RuntimeError("raw")

        def on_failure(self, exception: BaseException) -> str:
            return f"friendly: {exception}"

    sch = Scheduler()
    with make_worker(sch) as w:
        w.add(WkCustomFailure())
        w.run()
    assert "friendly: raw" in sch.fetch_error(WkCustomFailure().step_id)["error"]


def test_events_fire_in_order_while_scheduling_and_running() -> None:
    events: list[tuple[str, str]] = []

    class WkEventBase(trun.Step):
        pass

    for name in ("DEPENDENCY_DISCOVERED", "DEPENDENCY_PRESENT", "DEPENDENCY_MISSING", "START", "SUCCESS",
                 "PROCESSING_TIME", "FAILURE"):
        WkEventBase.event_handler(getattr(Event, name))(
            lambda step, *args, _n=name: events.append((_n, type(step).__name__)))

    class WkEventDone(WkEventBase):
        def complete(self) -> bool:
            return True

    class WkEventLeaf(WkEventBase):
        def complete(self) -> bool:
            return bool(events) and ("SUCCESS", "WkEventLeaf") in events

    class WkEventRoot(WkEventBase):
        def requires(self) -> Any:
            return [WkEventLeaf(), WkEventDone()]

        def run(self) -> None:
            raise RuntimeError("fail on purpose")

    with make_worker() as w:
        w.add(WkEventRoot())
        w.run()
    assert events == [
        ("DEPENDENCY_DISCOVERED", "WkEventRoot"), ("DEPENDENCY_DISCOVERED", "WkEventRoot"),
        ("DEPENDENCY_PRESENT", "WkEventDone"),
        ("START", "WkEventLeaf"), ("PROCESSING_TIME", "WkEventLeaf"), ("SUCCESS", "WkEventLeaf"),
        ("START", "WkEventRoot"), ("FAILURE", "WkEventRoot"),
    ]


def test_unfulfilled_dependency_at_run_time_fails_the_step_and_reschedules_it() -> None:
    state = {"dep_checks": 0, "dep_runs": 0, "root_done": False}

    class WkVanishingDep(trun.Step):
        def complete(self) -> bool:
            state["dep_checks"] += 1
            # There when scheduling looks, gone when the dependent is about to run.
            return state["dep_runs"] > 0 or state["dep_checks"] == 1

        def run(self) -> None:
            state["dep_runs"] += 1

    class WkNeedsVanishing(trun.Step):
        def requires(self) -> Any:
            return WkVanishingDep()

        def complete(self) -> bool:
            return state["root_done"]

        def run(self) -> None:
            state["root_done"] = True

    sch = Scheduler(stable_done_cooldown_secs=0)
    with make_worker(sch) as w:
        w.add(WkNeedsVanishing())
        assert w.run() is False  # the first attempt failed
    assert state["dep_runs"] == 1 and state["root_done"]
    assert statuses(sch, DONE) >= {WkNeedsVanishing().step_id}


def test_max_reschedules_stops_rescheduling_a_dependency_that_keeps_vanishing() -> None:
    runs = {"dep_checks": 0, "root": 0}

    class WkAlwaysVanishing(trun.Step):
        def complete(self) -> bool:
            # There whenever scheduling looks, gone whenever the dependent is about to run.
            runs["dep_checks"] += 1
            return runs["dep_checks"] % 2 == 1

    class WkNeedsAlwaysVanishing(trun.Step):
        def requires(self) -> Any:
            return WkAlwaysVanishing()

        def run(self) -> None:
            runs["root"] += 1

    with make_worker(Scheduler(stable_done_cooldown_secs=0), max_reschedules=2) as w:
        w.add(WkNeedsAlwaysVanishing())
        assert w.run() is False
    assert runs == {"dep_checks": 6, "root": 0}  # scheduled, then rescheduled twice
    assert list(w.unfulfilled_counts.values()) == [3]


def test_decrease_running_resources_gives_back_part_of_a_running_steps_resources() -> None:
    seen: list[Any] = []

    class WkGivesBack(trun.Step):
        resources = {"db": 2}

        def run(self) -> None:
            self.decrease_running_resources({"db": 1})
            seen.append(sch.get_running_step_resources(self.step_id)["resources"])

    sch = Scheduler(resources={"db": 2})
    with make_worker(sch) as w:
        w.add(WkGivesBack())
        w.run()
    assert seen == [{"db": 1}]


def test_worker_with_zero_processes_only_counts_pending_steps() -> None:
    ran: list[str] = []

    class WkNotRunByZero(trun.Step):
        def run(self) -> None:
            ran.append("x")

    with make_worker(worker_processes=0) as w:
        w.add(WkNotRunByZero())
        assert w.run()
    assert ran == []


def test_check_complete_on_run_fails_a_step_whose_outputs_are_still_missing() -> None:
    class WkForgetsOutput(trun.Step):
        def complete(self) -> bool:
            return False

    sch = Scheduler()
    with make_worker(sch, check_complete_on_run=True) as w:
        w.add(WkForgetsOutput())
        assert w.run() is False
    assert "complete() is still returning false" in sch.fetch_error(WkForgetsOutput().step_id)["error"]


def test_status_message_progress_and_tracking_url_reach_the_scheduler() -> None:
    class WkReports(trun.Step):
        def complete(self) -> bool:
            return False

        def run(self) -> None:
            self.set_status_message("half way")
            self.set_progress_percentage(50)
            self.set_tracking_url("http://tracker/job/1")

    sch = Scheduler()
    with make_worker(sch) as w:
        w.add(WkReports())
        w.run()
    step_id = WkReports().step_id
    assert sch.get_step_status_message(step_id)["statusMessage"] == "half way"
    assert sch.get_step_progress_percentage(step_id)["progressPercentage"] == 50
    assert sch.step_list(DONE, "")[step_id]["tracking_url"] == "http://tracker/job/1"


def test_reporter_callbacks_are_removed_from_the_step_after_run() -> None:
    class WkCallbacksGone(trun.Step):
        def run(self) -> None:
            assert callable(self.set_status_message)

    step = WkCallbacksGone()
    with make_worker() as w:
        w.add(step)
        w.run()
    assert step.set_status_message is None and step.scheduler_messages is None


def test_step_process_context_wraps_each_run() -> None:
    with make_worker(step_process_context=f"{__name__}.RecordingContext") as w:
        class WkInContext(trun.Step):
            def run(self) -> None:
                RecordingContext.log.append("run")

        RecordingContext.log.clear()
        w.add(WkInContext())
        assert w.run()
    assert RecordingContext.log == ["enter WkInContext", "run", "exit"]


def test_step_process_context_can_report_statistics_through_the_status_reporter() -> None:
    class WkMeasured(trun.Step):
        def run(self) -> None:
            pass

    sch = RecordingScheduler()
    with make_worker(sch, step_process_context=f"{__name__}.StatisticsContext") as w:
        w.add(WkMeasured())
        w.run()
    assert ("report_step_statistics", {"step_id": WkMeasured().step_id, "statistics": {"rows": 3}}) in sch.calls


def test_unimportable_step_process_context_fails_the_step_with_an_explanation() -> None:
    class WkBadContext(trun.Step):
        def run(self) -> None:
            pass

    sch = Scheduler()
    with make_worker(sch, step_process_context="no_such_module_here.Context") as w:
        w.add(WkBadContext())
        assert w.run() is False
    assert "step_process_context" in sch.fetch_error(WkBadContext().step_id)["error"]


class StatisticsContext:
    def __init__(self, step_process: Any) -> None:
        self.reporter = step_process.status_reporter

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        self.reporter.report_step_statistics({"rows": 3})


class RecordingContext:
    log: list[str] = []

    def __init__(self, step_process: Any) -> None:
        self.step = step_process.step

    def __enter__(self) -> None:
        self.log.append(f"enter {type(self.step).__name__}")

    def __exit__(self, *exc: Any) -> None:
        self.log.append("exit")


def test_reporters_hear_about_scheduling_start_and_finish() -> None:
    class WkReported(trun.Step):
        def complete(self) -> bool:
            return False

    reporter = RecordingReporter()
    with make_worker() as w:
        w.reporters.append(reporter)
        w.add(WkReported())
        w.run()
    assert reporter.events == [("scheduled", "WkReported()", PENDING, True), ("started", "WkReported()"),
                               ("finished", "WkReported()", DONE)]


def test_step_scheduled_by_another_worker_is_loaded_by_an_assistant() -> None:
    ran: list[str] = []

    class WkForAssistant(trun.Step):
        def complete(self) -> bool:
            return bool(ran)

        def run(self) -> None:
            ran.append("assistant")

    sch = Scheduler()
    with make_worker(sch, worker_id="scheduler-only") as w1:
        w1.add(WkForAssistant())
    with make_worker(sch, worker_id="assistant", assistant=True) as w2:
        assert w2.run()
    assert ran == ["assistant"]


def test_step_that_cannot_be_loaded_is_reported_failed() -> None:
    sch = Scheduler()
    sch.add_step(worker="elsewhere", step_id="WkGhost_1", family="WkNoSuchFamily",
                 module="no_such_module_for_trun_tests", params={}, runnable=True)
    with make_worker(sch, assistant=True) as w:
        assert w.run() is False
    assert "WkGhost_1" in statuses(sch, FAILED)


# -- keep-alive, idling, stopping ------------------------------------------------


def _flaky_pair(prefix: str, fail_times: int) -> tuple[type, list[str]]:
    attempts: list[str] = []

    class Flaky(trun.Step):
        def complete(self) -> bool:
            return len(attempts) > fail_times

        def run(self) -> None:
            attempts.append("try")
            if len(attempts) <= fail_times:
                raise RuntimeError("flaky")

    class Parent(trun.Step):
        def requires(self) -> Any:
            return Flaky()

        def complete(self) -> bool:
            return "parent" in attempts

        def run(self) -> None:
            attempts.append("parent")

    Flaky.__name__ = Flaky.__qualname__ = f"{prefix}Flaky"
    Parent.__name__ = Parent.__qualname__ = f"{prefix}Parent"
    return Parent, attempts


def test_without_keep_alive_worker_exits_after_a_failure() -> None:
    parent, attempts = _flaky_pair("WkNoKeep", fail_times=1)
    with make_worker(Scheduler(retry_delay=0.05, prune_on_get_work=True)) as w:
        w.add(parent())
        assert w.run() is False
    assert attempts == ["try"]


def test_keep_alive_waits_for_retry_and_finishes_the_workflow() -> None:
    parent, attempts = _flaky_pair("WkKeep", fail_times=1)
    with make_worker(Scheduler(retry_delay=0.05, prune_on_get_work=True), keep_alive=True) as w:
        w.add(parent())
        w.run()
    assert attempts == ["try", "try", "parent"]


def test_max_keep_alive_idle_duration_ends_the_wait() -> None:
    parent, attempts = _flaky_pair("WkIdle", fail_times=100)
    started = time.monotonic()
    with make_worker(Scheduler(retry_delay=900, prune_on_get_work=True), keep_alive=True,
                     max_keep_alive_idle_duration=datetime.timedelta(seconds=0.2)) as w:
        w.add(parent())
        assert w.run() is False
    assert 0.2 <= time.monotonic() - started < 5
    assert attempts == ["try"]


def test_count_uniques_leaves_when_pending_steps_are_shared_with_another_worker() -> None:
    parent, attempts = _flaky_pair("WkUniq", fail_times=100)
    sch = Scheduler(retry_delay=900, prune_on_get_work=True)
    with make_worker(sch, worker_id="other") as other:
        other.add(parent())
    started = time.monotonic()
    with make_worker(sch, keep_alive=True, count_uniques=True) as w:
        w.add(parent())
        w.run()
    assert time.monotonic() - started < 5


def test_sigusr1_stops_the_worker_from_asking_for_more_work() -> None:
    ran: list[str] = []

    class WkSignalsFirst(trun.Step):
        priority = 10

        def run(self) -> None:
            ran.append("first")
            os.kill(os.getpid(), signal.SIGUSR1)

    class WkNeverRuns(trun.Step):
        def run(self) -> None:
            ran.append("second")

    with make_worker() as w:
        w.add(WkSignalsFirst())
        w.add(WkNeverRuns())
        w.run()
    assert ran == ["first"]


def test_worker_restores_the_previous_sigusr1_handler_on_exit() -> None:
    def previous(signum: int, frame: Any) -> None:
        pass

    old = signal.signal(signal.SIGUSR1, previous)
    try:
        with make_worker():
            assert signal.getsignal(signal.SIGUSR1) is not previous
        assert signal.getsignal(signal.SIGUSR1) is previous
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_no_install_shutdown_handler_leaves_sigusr1_alone() -> None:
    def previous(signum: int, frame: Any) -> None:
        pass

    old = signal.signal(signal.SIGUSR1, previous)
    try:
        with make_worker(no_install_shutdown_handler=True):
            assert signal.getsignal(signal.SIGUSR1) is previous
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_disabled_worker_state_makes_the_worker_phase_out() -> None:
    ran: list[str] = []

    class WkDisablesWorker(trun.Step):
        priority = 10

        def run(self) -> None:
            ran.append("first")
            sch.disable_worker(worker="phasing-out")

    class WkAfterDisable(trun.Step):
        def run(self) -> None:
            ran.append("second")

    sch = Scheduler()
    with make_worker(sch, worker_id="phasing-out") as w:
        w.add(WkDisablesWorker())
        w.add(WkAfterDisable())
        w.run()
    assert ran == ["first"]


# -- pings and scheduler messages --------------------------------------------------


def test_ping_thread_pings_while_a_long_step_runs_in_process() -> None:
    class WkLongRun(trun.Step):
        def run(self) -> None:
            wait_until(lambda: sch.names().count("ping") >= 3, 30, "three pings")

    sch = RecordingScheduler()
    with make_worker(sch, ping_interval=0.05) as w:
        w.add(WkLongRun())
        w.run()
    assert sch.names().count("ping") >= 3


def test_worker_pings_while_a_slow_complete_is_checked_and_stops_afterwards() -> None:
    class WkSlowToCheck(trun.Step):
        def complete(self) -> bool:
            wait_until(lambda: sch.names().count("ping") >= 3, 30, "three pings")
            return True

    sch = RecordingScheduler()
    with make_worker(sch, ping_interval=0.05) as w:
        w.add(WkSlowToCheck())
        pings = sch.names().count("ping")
        time.sleep(0.15)
        assert sch.names().count("ping") == pings  # no pinging left behind after add()
    assert pings >= 3


def test_set_worker_processes_message_changes_parallelism() -> None:
    class WkAsksForTwo(trun.Step):
        def run(self) -> None:
            sch.set_worker_processes(worker="resizable", n=2)
            wait_until(lambda: w.worker_processes == 2, 30, "the ping thread delivers the message")

    sch = Scheduler()
    with make_worker(sch, worker_id="resizable", ping_interval=0.05) as w:
        w.add(WkAsksForTwo())
        w.run()
        assert w.worker_processes == 2


def test_scheduler_message_reaches_a_step_that_accepts_messages_and_gets_an_answer() -> None:
    received: list[str] = []

    class WkListens(trun.Step):
        accepts_messages = True

        def run(self) -> None:
            message = self.scheduler_messages.get(timeout=5)
            received.append(message.content)
            message.respond("pong")

    sch = Scheduler()
    step = WkListens()
    with make_worker(sch, worker_id="listener", ping_interval=0.05) as w:
        w.add(step)
        message_id = sch.send_scheduler_message(worker="listener", step=step.step_id, content="ping?")["message_id"]
        w.run()
    assert received == ["ping?"]
    assert sch.get_scheduler_message_response(step.step_id, message_id)["response"] == "pong"


class MessagingScheduler(Scheduler):
    """A real scheduler whose first ping answer carries extra rpc messages."""

    def __init__(self, messages: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extra = messages

    def ping(self, worker: str, current_steps: Any = None) -> dict[str, Any]:
        answer = super().ping(worker=worker, current_steps=current_steps)
        answer["rpc_messages"] = answer["rpc_messages"] + self.extra
        self.extra = []
        return answer


@pytest.mark.parametrize("message, complaint", [
    ({"name": "no_such_callback", "kwargs": {}}, "has no function"),
    ({"name": "run", "kwargs": {}}, "not available as rpc message callback"),
    ({"name": "set_worker_processes", "kwargs": {"wrong": 1}}, "cannot call"),
])
def test_invalid_rpc_message_is_logged_and_ignored(message: dict[str, Any], complaint: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    class WkWaitsForPing(trun.Step):
        def run(self) -> None:
            wait_until(lambda: complaint in caplog.text, 30, "a ping answer carried the message")

    with make_worker(MessagingScheduler([message]), ping_interval=0.05) as w:
        w.add(WkWaitsForPing())
        w.run()
    assert complaint in caplog.text
    assert w.worker_processes == 1


# -- configuration -----------------------------------------------------------------


def test_keyword_arguments_override_worker_config() -> None:
    from trun.testing import with_config

    with with_config({"worker": {"keep_alive": "true", "wait_interval": "3.5"}}):
        w = Worker(scheduler=Scheduler(), wait_interval=0.25)
        assert w._config.keep_alive is True
        assert w._config.wait_interval == 0.25
        w.__exit__(None, None, None)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_luigi_style_core_aliases_still_configure_the_worker() -> None:
    from trun.testing import with_config

    with with_config({"core": {"worker-keep-alive": "true", "worker-step-limit": "7"}}):
        with Worker(scheduler=Scheduler()) as w:
            assert w._config.keep_alive is True
            assert w._config.step_limit == 7


def test_worker_id_comes_from_config_when_not_given() -> None:
    from trun.testing import with_config

    with with_config({"worker": {"id": "configured-id"}}):
        with Worker(scheduler=Scheduler()) as w:
            assert w._id == "configured-id"


def test_wait_interval_below_the_minimum_is_rejected() -> None:
    with pytest.raises(ValueError, match="wait_interval"):
        Worker(scheduler=Scheduler(), wait_interval=0)


def test_negative_wait_jitter_is_rejected() -> None:
    with pytest.raises(ValueError, match="wait_jitter"):
        Worker(scheduler=Scheduler(), wait_jitter=-1)


def test_unknown_worker_setting_is_rejected() -> None:
    with pytest.raises(Exception, match="keep_alive_forever"):
        Worker(scheduler=Scheduler(), keep_alive_forever=True)


def test_default_scheduler_is_an_in_process_scheduler() -> None:
    class WkDefaultScheduler(trun.Step):
        def run(self) -> None:
            pass

    with Worker(wait_jitter=0) as w:
        assert isinstance(w._scheduler, Scheduler)
        w.add(WkDefaultScheduler())
        assert w.run()


# -- against a real trund ----------------------------------------------------------


def test_worker_runs_a_workflow_through_a_real_trund(trund: Any, tmp_path: Any) -> None:
    from trun.rpc import RemoteScheduler

    class WkRemoteLeaf(trun.Step):
        def output(self) -> Any:
            return trun.LocalTarget(str(tmp_path / "leaf"))

        def run(self) -> None:
            self.set_status_message("leafing")
            self.output().open("w").close()

    class WkRemoteRoot(trun.Step):
        def requires(self) -> Any:
            return WkRemoteLeaf()

        def output(self) -> Any:
            return trun.LocalTarget(str(tmp_path / "root"))

        def run(self) -> None:
            self.output().open("w").close()

    remote = RemoteScheduler(trund.url)
    with make_worker(remote) as w:
        assert w.add(WkRemoteRoot())
        assert w.run()
    assert set(remote.step_list(DONE, "")) == {WkRemoteLeaf().step_id, WkRemoteRoot().step_id}
    assert remote.get_step_status_message(WkRemoteLeaf().step_id)["statusMessage"] == "leafing"


def test_logging_uses_the_trun_interface_logger(caplog: pytest.LogCaptureFixture) -> None:
    class WkLogged(trun.Step):
        def run(self) -> None:
            pass

    with caplog.at_level(logging.INFO, logger="trun-interface"):
        with make_worker() as w:
            w.add(WkLogged())
            w.run()
    assert any(r.name == "trun-interface" and "WkLogged" in r.getMessage() for r in caplog.records)


# -- batches -------------------------------------------------------------------------


def test_scheduler_batch_runs_once_with_the_combined_parameters() -> None:
    ran: list[int] = []

    class WkBatched(trun.Step):
        value = trun.IntParameter(batch_method=max)

        def complete(self) -> bool:
            return bool(ran) and self.value <= max(ran)

        def run(self) -> None:
            ran.append(self.value)

    sch = Scheduler()
    with make_worker(sch) as w:
        for value in (1, 2, 3):
            w.add(WkBatched(value))
        assert w.run()
    assert ran == [3]
    assert set(sch.step_list(DONE, "")) == {WkBatched(v).step_id for v in (1, 2, 3)}
    assert {(step.value, status) for step, status, _ in w._add_step_history if status == DONE} == {
        (1, DONE), (2, DONE), (3, DONE)}


# -- e-mails -------------------------------------------------------------------------


class _SmtpSinkHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: accepts every message and keeps its text."""

    def handle(self) -> None:
        def reply(text: str) -> None:
            self.wfile.write(f"{text}\r\n".encode())

        reply("220 sink ready")
        in_data, lines = False, []
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if in_data:
                if line == ".":
                    in_data = False
                    self.server.messages.append("\n".join(lines))  # type: ignore[attr-defined]
                    lines = []
                    reply("250 queued")
                else:
                    lines.append(line)
                continue
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                reply("250 sink")
            elif verb == "DATA":
                in_data = True
                reply("354 end with .")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("250 ok")


@pytest.fixture
def smtp_sink(free_port: int) -> Any:
    """A real SMTP server on 127.0.0.1 that keeps what it receives; yields the list of messages."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port), _SmtpSinkHandler)
    server.daemon_threads = True
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    from trun.testing import with_config
    with with_config({"email": {"receiver": "ops@example.com", "force_send": "true"},
                      "smtp": {"host": "127.0.0.1", "port": str(free_port), "no_tls": "true"}}):
        yield server.messages
    server.shutdown()
    server.server_close()
    thread.join()


def _subject_and_body(raw: str) -> tuple[str, str]:
    message = email.message_from_string(raw)
    body = "".join(part.get_payload(decode=True).decode() for part in message.walk()
                   if part.get_content_maintype() == "text")
    return str(email.header.make_header(email.header.decode_header(message["Subject"]))), body


def test_failed_step_sends_an_error_email(smtp_sink: list[str]) -> None:
    class WkMailsFailure(trun.Step):
        def run(self) -> None:
            raise RuntimeError("mail me")

    with make_worker() as w:
        w.add(WkMailsFailure())
        w.run()
    assert len(smtp_sink) == 1
    subject, body = _subject_and_body(smtp_sink[0])
    assert subject.startswith("Trun: WkMailsFailure() FAILED. Host: ")
    assert "mail me" in body


def test_send_failure_email_false_sends_nothing(smtp_sink: list[str]) -> None:
    class WkQuietFailure(trun.Step):
        def run(self) -> None:
            raise RuntimeError("keep quiet")

    with make_worker(send_failure_email=False) as w:
        w.add(WkQuietFailure())
        w.run()
    assert smtp_sink == []


def test_scheduling_failure_sends_an_error_email(smtp_sink: list[str]) -> None:
    class WkMailsSchedulingFailure(trun.Step):
        def complete(self) -> bool:
            raise OSError("cannot look")

    with make_worker() as w:
        w.add(WkMailsSchedulingFailure())
    assert len(smtp_sink) == 1
    subject, body = _subject_and_body(smtp_sink[0])
    assert subject.startswith("Trun: WkMailsSchedulingFailure() failed scheduling. Host: ")
    assert "cannot look" in body


def test_build_with_many_roots_starts_one_ping_thread_for_the_whole_scheduling_walk(monkeypatch) -> None:
    import trun.worker as worker_module

    starts = []

    class CountingPingThread(worker_module.PingThread):
        def start(self) -> None:
            starts.append(self)
            super().start()

    monkeypatch.setattr(worker_module, "PingThread", CountingPingThread)

    class Root(trun.Step):
        i = trun.IntParameter()

        def complete(self) -> bool:
            return True

    assert trun.build([Root(i=i) for i in range(20)], local_scheduler=True, no_lock=True)
    assert len(starts) == 1
    assert not any(thread.is_alive() for thread in starts)


def test_build_with_many_roots_reports_them_to_the_scheduler_in_bulk(monkeypatch) -> None:
    batches = []
    original = Scheduler._add_local_reports

    def counting(self, worker, steps):
        batches.append(len(steps))
        return original(self, worker, steps)

    monkeypatch.setattr(Scheduler, "_add_local_reports", counting)

    class Root(trun.Step):
        i = trun.IntParameter()

        def complete(self) -> bool:
            return True

    assert trun.build([Root(i=i) for i in range(20)], local_scheduler=True, no_lock=True)
    assert batches == [20]
