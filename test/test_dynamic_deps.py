"""Tests of dynamic dependencies: steps whose ``run()`` yields the steps it needs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import trun
from trun.scheduler import Scheduler
from trun.step import DynamicRequirements
from trun.step_status import DONE, FAILED, PENDING
from trun.worker import Worker

pytestmark = pytest.mark.filterwarnings("ignore:Step .* without outputs:UserWarning")


def make_worker(scheduler: Any = None, **kwargs: Any) -> Worker:
    kwargs.setdefault("wait_interval", 0.01)
    kwargs.setdefault("wait_jitter", 0)
    return Worker(scheduler=scheduler if scheduler is not None else Scheduler(), **kwargs)


class DynFile(trun.Step):
    """Writes ``<path>/<name>``; importable, so children can load it by name."""

    path = trun.Parameter()
    name = trun.Parameter()

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, self.name))

    def run(self) -> None:
        with self.output().open("w") as out:
            out.write(self.name)


class DynCollector(trun.Step):
    """Yields three DynFile steps, then joins their contents."""

    path = trun.Parameter()

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, "collected"))

    def run(self) -> Any:
        Path(self.path, f"collector-run-{os.getpid()}-{len(os.listdir(self.path))}").touch()
        targets = yield [DynFile(self.path, f"part{i}") for i in range(3)]
        text = "".join(t.open().read() for t in targets)
        with self.output().open("w") as out:
            out.write(text)


def test_incomplete_yielded_step_runs_first_and_run_starts_again() -> None:
    log: list[str] = []

    class DynNeeded(trun.Step):
        def complete(self) -> bool:
            return "needed" in log

        def run(self) -> None:
            log.append("needed")

    class DynYielder(trun.Step):
        def complete(self) -> bool:
            return "yielder done" in log

        def run(self) -> Any:
            log.append("yielder started")
            yield DynNeeded()
            log.append("yielder done")

    with make_worker() as w:
        assert w.add(DynYielder())
        assert w.run()
    assert log == ["yielder started", "needed", "yielder started", "yielder done"]


def test_step_that_yielded_new_dependencies_is_reported_pending_with_them() -> None:
    class DynLater(trun.Step):
        def run(self) -> None:
            raise RuntimeError("stays missing")  # ends the workflow with the yielder pending

    class DynAsksForLater(trun.Step):
        def run(self) -> Any:
            yield DynLater()

    sch = Scheduler()
    with make_worker(sch) as w:
        w.add(DynAsksForLater())
        w.run()
    reports = [(type(step).__name__, status) for step, status, _ in w._add_step_history]
    assert ("DynAsksForLater", PENDING) in reports[1:]  # after running: back to PENDING
    assert DynLater().step_id in sch.dep_graph(DynAsksForLater().step_id)


def test_yield_hands_back_the_outputs_of_complete_steps(tmp_path: Path) -> None:
    received: list[Any] = []

    class DynReceiver(trun.Step):
        def complete(self) -> bool:
            return bool(received)

        def run(self) -> Any:
            single = yield DynFile(str(tmp_path), "one")
            mapping = yield {"a": DynFile(str(tmp_path), "a"), "b": DynFile(str(tmp_path), "b")}
            received.extend([single, mapping])

    with make_worker() as w:
        w.add(DynReceiver())
        assert w.run()
    single, mapping = received
    assert single.path == str(tmp_path / "one")
    assert {k: v.path for k, v in mapping.items()} == {"a": str(tmp_path / "a"), "b": str(tmp_path / "b")}


def test_dynamic_requirements_custom_complete_replaces_the_per_step_checks(tmp_path: Path) -> None:
    checks: list[str] = []

    def all_there(complete_fn: Any) -> bool:
        checks.append("custom")
        return all((tmp_path / f"d{i}").exists() for i in range(3))

    class DynBulkChecked(trun.Step):
        def complete(self) -> bool:
            return (tmp_path / "bulk-done").exists()

        def run(self) -> Any:
            yield DynamicRequirements([DynFile(str(tmp_path), f"d{i}") for i in range(3)], all_there)
            (tmp_path / "bulk-done").touch()

    with make_worker() as w:
        w.add(DynBulkChecked())
        assert w.run()
    assert checks == ["custom", "custom"]  # before the dependencies ran, and after
    assert (tmp_path / "bulk-done").exists()


def test_yielding_something_that_is_not_a_step_fails_the_step_with_a_hint() -> None:
    class DynYieldsTarget(trun.Step):
        def run(self) -> Any:
            yield trun.LocalTarget("somewhere")

    sch = Scheduler()
    with make_worker(sch) as w:
        w.add(DynYieldsTarget())
        assert w.run() is False
    error = sch.fetch_error(DynYieldsTarget().step_id)["error"]
    assert "yielded" in error and "ExternalStep" in error


def test_failing_dynamic_dependency_leaves_the_step_unfinished() -> None:
    ran: list[str] = []

    class DynBroken(trun.Step):
        def run(self) -> None:
            raise RuntimeError("cannot")

    class DynNeedsBroken(trun.Step):
        def run(self) -> Any:
            ran.append("start")
            yield DynBroken()
            ran.append("end")

    sch = Scheduler()
    with make_worker(sch) as w:
        w.add(DynNeedsBroken())
        assert w.run() is False
    assert ran == ["start"]
    assert set(sch.step_list(FAILED, "")) == {DynBroken().step_id}


def test_several_yields_are_satisfied_one_after_another() -> None:
    log: list[str] = []

    class DynStage(trun.Step):
        n = trun.IntParameter()

        def complete(self) -> bool:
            return f"stage{self.n}" in log

        def run(self) -> None:
            log.append(f"stage{self.n}")

    class DynPipeline(trun.Step):
        def complete(self) -> bool:
            return "pipeline" in log

        def run(self) -> Any:
            yield DynStage(1)
            yield DynStage(2)
            log.append("pipeline")

    with make_worker() as w:
        w.add(DynPipeline())
        assert w.run()
    assert log == ["stage1", "stage2", "pipeline"]


def test_dynamic_dependencies_work_with_several_worker_processes(tmp_path: Path) -> None:
    sch = Scheduler()
    with make_worker(sch, worker_processes=2) as w:
        w.add(DynCollector(str(tmp_path)))
        assert w.run()
    assert (tmp_path / "collected").read_text() == "part0part1part2"
    runs = [p.name for p in tmp_path.iterdir() if p.name.startswith("collector-run-")]
    assert len(runs) == 2  # once to discover the parts, once to finish
    assert str(os.getpid()) not in "".join(runs)
    assert len(sch.step_list(DONE, "")) == 4
