"""The worker's shortcuts for steps run in its own process leave the general behaviour where it matters.

The worker skips work it can prove useless: event dispatch when no handler
can be called, setattr when writing the step's dict is the same thing, the
partition of every step into summary categories when every step succeeded.
These tests take the cases where the proof fails (a handler registered while
a step runs, a class with its own ``trigger_event``, a property among the
callbacks it hands the step, steps of two classes sharing a family) and
check the general behaviour happens.

Other shortcuts are written-out forms of a general one (the callbacks handed
to a step, the settings handed to a StepProcess by position, the result of a
step run in this process handled at once instead of queued); their tests pin
down that both forms agree.
"""
from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

import pytest

import trun
from trun.event import Event
from trun.execution_summary import TrunRunResult, TrunStatusCode, _Partition, _steps_status
from trun.scheduler import Scheduler
from trun.step import externalize
from trun.step_process import _FORWARDED_ATTRIBUTES, _FORWARDED_NAMES
from trun.worker import Worker

pytestmark = pytest.mark.filterwarnings("ignore:Step .* without outputs:UserWarning")


def run_steps(*steps: trun.Step) -> Worker:
    with Worker(scheduler=Scheduler(), wait_interval=0.01, wait_jitter=0) as w:
        assert w.add(steps[0])
        for step in steps[1:]:
            assert w.add(step)
        w.run()
    return w


def test_a_handler_registered_while_a_step_runs_hears_its_success() -> None:
    heard: list[str] = []

    class FpLate(trun.Step):
        def run(self) -> None:
            FpLate.event_handler(Event.SUCCESS)(lambda step: heard.append(step.step_id))

    run_steps(FpLate())
    assert heard == [FpLate().step_id]


def test_a_class_with_its_own_trigger_event_gets_every_event() -> None:
    events: list[str] = []

    class FpLeaf(trun.Step):
        ran = False

        def complete(self) -> bool:
            return self.ran

        def run(self) -> None:
            self.ran = True

    class FpSelfTriggering(trun.Step):
        def trigger_event(self, event: str, *args: Any, **kwargs: Any) -> None:
            events.append(event)
            super().trigger_event(event, *args, **kwargs)

        def requires(self) -> list[trun.Step]:
            return [FpLeaf()]

        def run(self) -> None:
            pass

    run_steps(FpSelfTriggering())
    assert events == [Event.DEPENDENCY_DISCOVERED, Event.START, Event.PROCESSING_TIME, Event.SUCCESS]


def test_dependency_discovered_fires_for_every_dependency_once_a_handler_exists() -> None:
    discovered: list[int] = []

    class FpDep(trun.Step):
        i = trun.IntParameter()

        def complete(self) -> bool:
            return True

    class FpFanIn(trun.Step):
        def requires(self) -> list[trun.Step]:
            return [FpDep(i=i) for i in range(5)]

    FpFanIn.event_handler(Event.DEPENDENCY_DISCOVERED)(lambda step, dep: discovered.append(dep.i))
    with Worker(scheduler=Scheduler(), wait_interval=0.01, wait_jitter=0) as w:
        assert w.add(FpFanIn())
    assert discovered == [0, 1, 2, 3, 4]


def test_callbacks_are_handed_through_a_property_setter_and_taken_back() -> None:
    seen: dict[str, Any] = {}

    class FpWithSetter(trun.Step):
        @property
        def set_status_message(self) -> Any:
            return self.__dict__.get("_message_callback")

        @set_status_message.setter
        def set_status_message(self, callback: Any) -> None:
            seen.setdefault("set", []).append(callback)
            self.__dict__["_message_callback"] = callback

        def run(self) -> None:
            self.set_status_message("working")
            seen["during"] = callable(self.set_status_message)

    sch = Scheduler()
    with Worker(scheduler=sch, wait_interval=0.01, wait_jitter=0) as w:
        step = FpWithSetter()
        assert w.add(step)
        assert w.run()
    assert seen["during"] is True
    assert len(seen["set"]) == 1  # through the setter; nothing was in the step's dict to put back
    assert sch.get_step_status_message(step.step_id)["statusMessage"] == "working"


def test_an_instance_attribute_named_like_a_callback_is_put_back_after_the_run() -> None:
    class FpPreset(trun.Step):
        def run(self) -> None:
            self.set_progress_percentage(50)

    step = FpPreset()
    step.set_progress_percentage = "mine"  # type: ignore[assignment]
    run_steps(step)
    assert step.__dict__["set_progress_percentage"] == "mine"
    assert "set_status_message" not in step.__dict__


def test_same_family_classes_make_the_summary_take_the_general_way() -> None:
    class FpShared(trun.Step):
        def complete(self) -> bool:
            return False

    ExternalShared = externalize(FpShared)
    w = run_steps(FpShared(), ExternalShared())
    result = TrunRunResult(w)
    partition = _Partition(list(w._add_step_history))
    assert result.status == _steps_status(partition.sets({}))
    assert result.status != TrunStatusCode.SUCCESS


def test_the_quick_success_verdict_agrees_with_the_full_partition() -> None:
    class FpOk(trun.Step):
        i = trun.IntParameter()
        done = False

        def complete(self) -> bool:
            return self.done

        def run(self) -> None:
            self.done = True

    class FpRoot(trun.Step):
        def requires(self) -> list[trun.Step]:
            return [FpOk(i=i) for i in range(3)]

        def run(self) -> None:
            pass

    w = run_steps(FpRoot())
    result = TrunRunResult(w)
    assert result.status == TrunStatusCode.SUCCESS
    assert _steps_status(_Partition(list(w._add_step_history)).sets({})) == TrunStatusCode.SUCCESS
    assert "* 4 ran successfully:" in result.summary_text


def test_the_callbacks_a_step_gets_are_the_reporter_methods_the_table_names() -> None:
    class FpMessages(trun.Step):
        accepts_messages = True

    for step in (FpOk(i=0), FpMessages()):
        with Worker(scheduler=Scheduler()) as w:
            step_process = w._create_step_process(step)
        reporter = step_process.status_reporter
        before = dict(step.__dict__)
        assert step_process._forward_attributes() is None  # the written-out way
        forwarded = {name: value for name, value in step.__dict__.items() if name not in before}
        assert forwarded == {step_attr: getattr(reporter, reporter_attr)
                             for reporter_attr, step_attr in _FORWARDED_ATTRIBUTES}
        assert set(forwarded) == set(_FORWARDED_NAMES)
        step_process._restore_attributes(None)
        assert step.__dict__ == before
    assert FpMessages().scheduler_messages is None  # only while it runs


class FpOk(trun.Step):
    i = trun.IntParameter()


def test_a_step_process_gets_each_worker_setting_in_its_place() -> None:
    settings = dict(timeout=7.5, check_unfulfilled_deps=False, check_complete_on_run=True,
                    cache_step_completion=True, step_process_context="some.Context")
    with Worker(scheduler=Scheduler(), **settings) as w:
        step_process = w._create_step_process(FpOk(i=1))
        assert (step_process.step, step_process.worker_id) == (FpOk(i=1), w._id)
        assert step_process.worker_timeout == 7.5
        assert step_process.use_multiprocessing is True  # a timeout needs a child process
        assert step_process.check_unfulfilled_deps is False
        assert step_process.check_complete_on_run is True
        assert step_process.completion_cache is w._step_completion_cache is not None
        assert step_process.context == "some.Context"
    with Worker(scheduler=Scheduler(), worker_processes=2) as w:
        step_process = w._create_step_process(FpOk(i=1))
        assert step_process.use_multiprocessing is True
        assert (step_process.worker_timeout, step_process.check_unfulfilled_deps) == (None, True)
        assert (step_process.check_complete_on_run, step_process.completion_cache, step_process.context) == (
            False, None, None)


class RecordingScheduler(Scheduler):
    """Logs, in order, the reports it gets from its worker and the work it hands out."""

    def __init__(self, log: list[tuple[str, str | None]]) -> None:
        super().__init__()
        self.log = log

    def _add_local_reports(self, worker: str, steps: Any) -> None:
        self.log.extend((str(report.status), report.step_id) for report in steps)
        super()._add_local_reports(worker, steps)

    def get_work(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        reply = super().get_work(*args, **kwargs)
        self.log.append(("get_work", reply["step_id"]))
        return reply


class RecordingProgress:
    def __init__(self, log: list[tuple[str, str | None]]) -> None:
        self.log = log

    def on_started(self, step: trun.Step) -> None:
        self.log.append(("started", step.step_id))

    def on_finished(self, step: trun.Step, status: str) -> None:
        self.log.append(("finished " + status, step.step_id))


def test_a_step_run_here_is_finished_and_reported_before_the_next_get_work() -> None:
    ran: set[str] = set()

    class FpFirst(trun.Step):
        def complete(self) -> bool:
            return self.step_id in ran

        def run(self) -> None:
            ran.add(self.step_id)

    class FpSecond(FpFirst):
        def requires(self) -> list[trun.Step]:
            return [FpFirst()]

    log: list[tuple[str, str | None]] = []
    first, second = FpFirst().step_id, FpSecond().step_id
    with Worker(scheduler=RecordingScheduler(log), wait_interval=0.01, wait_jitter=0) as w:
        w.reporters.append(RecordingProgress(log))
        assert w.add(FpSecond())
        log.clear()
        assert w.run()
    assert log == [
        ("get_work", first), ("started", first), ("finished DONE", first), ("DONE", first),
        ("get_work", second), ("started", second), ("finished DONE", second), ("DONE", second),
        ("get_work", None),
    ]


def test_a_class_naming_its_own_family_still_registers_its_batcher_once() -> None:
    calls: list[str] = []

    class CountingBatchers(Scheduler):
        def add_step_batcher(self, worker: str, step_family: str, **kwargs: Any) -> None:
            calls.append(step_family)
            super().add_step_batcher(worker=worker, step_family=step_family, **kwargs)

    class FpRenamed(trun.Step):
        n = trun.IntParameter(batch_method=max)

        @classmethod
        def get_step_family(cls) -> str:
            return "Renamed"

    class FpRenamedRoot(trun.WrapperStep):
        def requires(self) -> list[trun.Step]:
            return [FpRenamed(n=n) for n in range(3)]

    with Worker(scheduler=CountingBatchers(), wait_interval=0.01, wait_jitter=0) as w:
        assert w.add(FpRenamedRoot())
    assert calls == ["Renamed"]


def test_dependency_present_fires_for_complete_dependencies_once_a_handler_exists() -> None:
    present: list[int] = []

    class FpDone(trun.Step):
        i = trun.IntParameter()

        def complete(self) -> bool:
            return True

    class FpNeedsDone(trun.Step):
        def requires(self) -> list[trun.Step]:
            return [FpDone(i=i) for i in range(3)]

    FpDone.event_handler(Event.DEPENDENCY_PRESENT)(lambda step: present.append(step.i))
    with Worker(scheduler=Scheduler(), wait_interval=0.01, wait_jitter=0) as w:
        assert w.add(FpNeedsDone())
    assert present == [0, 1, 2]


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="about CPython's layout of instance attributes")
def test_handing_a_step_its_callbacks_and_taking_them_back_leaves_it_no_bigger() -> None:
    class FpRanLeaf(trun.Step):
        i = trun.IntParameter()

    steps = [FpRanLeaf(i=i) for i in range(1000)]
    with Worker(scheduler=Scheduler(), wait_interval=0.01, wait_jitter=0) as w:
        processes = [w._create_step_process(step) for step in steps]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for process in processes:
                process._restore_attributes(process._forward_attributes())
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    # The five names are in the class's shared attribute table: no step's own table grows.
    assert grown < 10 * len(steps), f"{grown / len(steps):.0f} bytes more per step"
    assert all(step.set_status_message is None for step in steps)


def test_a_step_class_with_a_finalizer_finalizes_only_the_steps_it_made() -> None:
    finalized: list[Any] = []

    class FpFinalized(trun.Step):
        i = trun.IntParameter()

        def __del__(self) -> None:
            finalized.append(self.__dict__.get("step_id"))

    step = FpFinalized(i=1)
    gc.collect()
    assert None not in finalized  # no instance made without the constructor
    assert step.step_id
