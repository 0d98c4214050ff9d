"""The worker's shortcuts for steps run in its own process leave the general behaviour where it matters.

The worker skips work it can prove useless: event dispatch when no handler
can be called, setattr when writing the step's dict is the same thing, the
partition of every step into summary categories when every step succeeded.
These tests take the cases where the proof fails (a handler registered while
a step runs, a class with its own ``trigger_event``, a property among the
callbacks it hands the step, steps of two classes sharing a family) and
check the general behaviour happens.
"""
from __future__ import annotations

from typing import Any

import pytest

import trun
from trun.event import Event
from trun.execution_summary import TrunRunResult, TrunStatusCode, _Partition, _steps_status
from trun.scheduler import Scheduler
from trun.step import externalize
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
