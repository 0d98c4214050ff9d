"""Tests of steps running in child processes: several workers, timeouts, crashes, fork safety.

Steps keep their state in files under ``tmp_path`` (a child cannot change the
parent's memory). Classes that a child or a process pool must import live at
module level.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import trun
from trun.event import Event
from trun.scheduler import Scheduler
from trun.step_status import DONE, FAILED, UNKNOWN
from trun.worker import Worker

pytestmark = pytest.mark.filterwarnings("ignore:Step .* without outputs:UserWarning")


def make_worker(scheduler: Any = None, **kwargs: Any) -> Worker:
    kwargs.setdefault("wait_interval", 0.01)
    kwargs.setdefault("wait_jitter", 0)
    return Worker(scheduler=scheduler if scheduler is not None else Scheduler(), **kwargs)


def wait_for(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


class FileStep(trun.Step):
    """Writes its pid into ``<path>/<name>``."""

    path = trun.Parameter()
    name = trun.Parameter()

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, self.name))

    def run(self) -> None:
        with self.output().open("w") as out:
            out.write(str(os.getpid()))


class DrawsRandom(FileStep):
    """Writes a number drawn from the ``random`` module instead of its pid."""

    def run(self) -> None:
        import random

        with self.output().open("w") as out:
            out.write(repr(random.random()))


class WaitsForPartner(trun.Step):
    """Finishes only once its partner has started: proves two steps run at the same time."""

    path = trun.Parameter()
    name = trun.Parameter()
    partner = trun.Parameter()

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, self.name))

    def run(self) -> None:
        Path(self.path, f"{self.name}.started").touch()
        wait_for(Path(self.path, f"{self.partner}.started"))
        self.output().open("w").close()


class Sleeper(trun.Step):
    seconds = trun.FloatParameter()

    def run(self) -> None:
        time.sleep(self.seconds)


class QuickTimeout(Sleeper):
    worker_timeout = 0.3


class NoTimeout(Sleeper):
    worker_timeout = 0


class ExitsHard(trun.Step):
    code = trun.IntParameter()

    def run(self) -> None:
        os._exit(self.code)


class KillsItself(trun.Step):
    def run(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class StartsGrandchild(trun.Step):
    path = trun.Parameter()
    worker_timeout = 0.5

    def run(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        Path(self.path, "grandchild.pid").write_text(str(child.pid))
        time.sleep(60)


class ReportsStatus(trun.Step):
    def complete(self) -> bool:
        return False

    def run(self) -> None:
        self.set_status_message("from the child")
        self.set_progress_percentage(75)


class Listener(trun.Step):
    path = trun.Parameter()
    accepts_messages = True

    def run(self) -> None:
        message = self.scheduler_messages.get(timeout=10)
        Path(self.path, "heard").write_text(message.content)
        message.respond("child says hi")


class CheckedInPool(trun.Step):
    """complete() records which process asked."""

    path = trun.Parameter()
    i = trun.IntParameter()

    def requires(self) -> Any:
        return [CheckedInPool(self.path, self.i - 1)] if self.i > 0 else []

    def complete(self) -> bool:
        Path(self.path, f"checked-{self.i}-{os.getpid()}").touch()
        return False


class ReadsItsLockedFile(trun.Step):
    """A step whose complete() needs nothing from the parent: safe for any start method."""

    path = trun.Parameter()

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, "spawned"))

    def run(self) -> None:
        with self.output().open("w") as out:
            out.write(str(os.getpid()))


class LeavesAThreadBehind(trun.Step):
    """Sends its result, but a non-daemon thread keeps its process alive for a minute."""

    path = trun.Parameter()

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, "lingerer.pid"))

    def run(self) -> None:
        threading.Thread(target=time.sleep, args=(60,), daemon=False).start()
        with self.output().open("w") as out:
            out.write(str(os.getpid()))


class RunsAfterTheLingerer(trun.Step):
    """Records whether the process of the step it requires was still alive when it ran."""

    path = trun.Parameter()

    def requires(self) -> Any:
        return LeavesAThreadBehind(self.path)

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, "lingerer-alive-when-next-ran"))

    def run(self) -> None:
        pid = int(Path(self.path, "lingerer.pid").read_text())
        with self.output().open("w") as out:
            out.write(str(_is_running(pid)))


class FailsOnceInAChild(trun.Step):
    """Fails the first time (its pid in ``first.pid``), succeeds the second."""

    path = trun.Parameter()

    def output(self) -> Any:
        return trun.LocalTarget(os.path.join(self.path, "second-attempt"))

    def run(self) -> None:
        first = Path(self.path, "first.pid")
        if not first.exists():
            first.write_text(str(os.getpid()))
            raise RuntimeError("first attempt fails")
        self.output().open("w").close()


def _is_running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- running in children -------------------------------------------------------------


def test_two_worker_processes_run_steps_in_child_processes(tmp_path: Path) -> None:
    steps = [FileStep(str(tmp_path), f"s{i}") for i in range(4)]
    with make_worker(worker_processes=2) as w:
        for step in steps:
            assert w.add(step)
        assert w.run()
    pids = {(tmp_path / f"s{i}").read_text() for i in range(4)}
    assert str(os.getpid()) not in pids


def test_two_worker_processes_run_two_steps_at_the_same_time(tmp_path: Path) -> None:
    with make_worker(worker_processes=2) as w:
        w.add(WaitsForPartner(str(tmp_path), "a", "b"))
        w.add(WaitsForPartner(str(tmp_path), "b", "a"))
        assert w.run()
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()


def test_next_step_starts_while_the_child_of_the_last_one_is_still_exiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tearing a child down costs time in proportion to the worker's memory: not the worker's to wait for.
    monkeypatch.setattr("trun.worker.EXIT_GRACE_SECONDS", 3.0)
    with make_worker(worker_processes=2) as w:
        w.add(RunsAfterTheLingerer(str(tmp_path)))
        assert w.run()
    assert (tmp_path / "lingerer-alive-when-next-ran").read_text() == "True"


def test_idle_worker_reaps_the_children_of_finished_steps(tmp_path: Path) -> None:
    # keep_alive: the worker idles until the failed step may be retried; no zombie should wait with it.
    import psutil

    seen: list[str] = []

    def look_while_idle() -> None:
        wait_for(tmp_path / "first.pid")
        time.sleep(1.0)  # the first attempt has long exited; the retry is 2 s away
        try:
            process = psutil.Process(int((tmp_path / "first.pid").read_text()))
            seen.append("zombie" if process.status() == psutil.STATUS_ZOMBIE else "alive")
        except psutil.NoSuchProcess:
            seen.append("reaped")

    watcher = threading.Thread(target=look_while_idle)
    watcher.start()
    with make_worker(Scheduler(retry_delay=2.0, prune_on_get_work=True), worker_processes=2, keep_alive=True) as w:
        w.add(FailsOnceInAChild(str(tmp_path)))
        w.run()
    watcher.join()
    assert (tmp_path / "second-attempt").exists()
    assert seen == ["reaped"]


def test_child_alive_after_its_result_is_terminated_when_its_grace_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("trun.worker.EXIT_GRACE_SECONDS", 0.5)
    started = time.monotonic()
    with make_worker(worker_processes=2) as w:
        w.add(LeavesAThreadBehind(str(tmp_path)))
        assert w.run()
    assert time.monotonic() - started < 30, "the worker waited for the thread instead of terminating the child"
    assert not _is_running(int((tmp_path / "lingerer.pid").read_text()))
    assert "is still alive after sending its result; terminating it" in caplog.text


def test_steps_in_forked_children_draw_different_random_numbers(tmp_path: Path) -> None:
    with make_worker(worker_processes=2) as w:
        for i in range(4):
            assert w.add(DrawsRandom(str(tmp_path), f"r{i}"))
        assert w.run()
    draws = {(tmp_path / f"r{i}").read_text() for i in range(4)}
    assert len(draws) == 4


def test_children_find_what_the_worker_learned_before_forking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # libc's prctl is looked up once, in the worker: a child that had to look
    # it up again would load libc and build ctypes classes for every step.
    from trun import step_process

    step_process._pdeathsig_setter.cache_clear()
    looked_up_in: list[int] = []
    real_cdll = step_process.ctypes.CDLL

    def counting_cdll(*args: Any, **kwargs: Any) -> Any:
        looked_up_in.append(os.getpid())
        Path(tmp_path, f"cdll-{os.getpid()}").touch()
        return real_cdll(*args, **kwargs)

    monkeypatch.setattr(step_process.ctypes, "CDLL", counting_cdll)
    with make_worker(worker_processes=2) as w:
        for i in range(3):
            assert w.add(FileStep(str(tmp_path), f"s{i}"))
        assert w.run()
    child_pids = {(tmp_path / f"s{i}").read_text() for i in range(3)}
    assert looked_up_in == ([os.getpid()] if sys.platform.startswith("linux") else [])
    assert not [p for p in tmp_path.glob("cdll-*") if p.name[len("cdll-"):] in child_pids]


def test_force_multiprocessing_runs_the_only_step_in_a_child(tmp_path: Path) -> None:
    with make_worker(force_multiprocessing=True) as w:
        w.add(FileStep(str(tmp_path), "forced"))
        assert w.run()
    assert (tmp_path / "forced").read_text() != str(os.getpid())


def test_status_messages_from_a_child_reach_the_in_process_scheduler() -> None:
    sch = Scheduler()
    with make_worker(sch, force_multiprocessing=True) as w:
        w.add(ReportsStatus())
        assert w.run()
    step_id = ReportsStatus().step_id
    assert sch.get_step_status_message(step_id)["statusMessage"] == "from the child"
    assert sch.get_step_progress_percentage(step_id)["progressPercentage"] == 75


def test_scheduler_message_reaches_a_step_in_a_child_and_the_answer_comes_back(tmp_path: Path) -> None:
    sch = Scheduler()
    step = Listener(str(tmp_path))
    with make_worker(sch, worker_id="mp-listener", force_multiprocessing=True, ping_interval=0.05) as w:
        w.add(step)
        message_id = sch.send_scheduler_message(worker="mp-listener", step=step.step_id,
                                                content="hello child")["message_id"]
        assert w.run()
    assert (tmp_path / "heard").read_text() == "hello child"
    assert sch.get_scheduler_message_response(step.step_id, message_id)["response"] == "child says hi"


def test_success_event_fires_in_the_child_that_ran_the_step(tmp_path: Path) -> None:
    parent_events: list[str] = []

    class MpEventful(trun.Step):
        def output(self) -> Any:
            return trun.LocalTarget(str(tmp_path / "eventful"))

        def run(self) -> None:
            self.output().open("w").close()

    @MpEventful.event_handler(Event.SUCCESS)
    def on_success(step: Any) -> None:
        parent_events.append(str(os.getpid()))
        (tmp_path / "success-pid").write_text(str(os.getpid()))

    with make_worker(force_multiprocessing=True) as w:
        w.add(MpEventful())
        assert w.run()
    assert parent_events == []  # fired in the child, not here
    assert (tmp_path / "success-pid").read_text() != str(os.getpid())


# -- timeouts and crashes ----------------------------------------------------------


def test_step_worker_timeout_terminates_the_step_and_fires_timeout() -> None:
    timeouts: list[str] = []
    QuickTimeout.event_handler(Event.TIMEOUT)(lambda step, msg: timeouts.append(msg))
    sch = Scheduler()
    step = QuickTimeout(seconds=30)
    started = time.monotonic()
    with make_worker(sch) as w:
        w.add(step)
        assert w.run() is False
    assert time.monotonic() - started < 10
    expected = f"Step {step.step_id} timed out after 0.3 seconds and was terminated."
    assert timeouts == [expected]
    assert expected in sch.fetch_error(step.step_id)["error"]


def test_worker_timeout_setting_applies_to_steps_without_their_own() -> None:
    sch = Scheduler()
    step = Sleeper(seconds=30)
    with make_worker(sch, timeout=0.2) as w:
        w.add(step)
        assert w.run() is False
    assert "timed out after 0.2 seconds" in sch.fetch_error(step.step_id)["error"]


def test_step_worker_timeout_zero_overrides_the_worker_timeout() -> None:
    sch = Scheduler()
    with make_worker(sch, timeout=0.1) as w:
        w.add(NoTimeout(seconds=0.3))
        assert w.run()
    assert set(sch.step_list(DONE, "")) == {NoTimeout(seconds=0.3).step_id}


def test_child_that_exits_with_an_error_code_is_a_process_failure() -> None:
    failures: list[str] = []
    ExitsHard.event_handler(Event.PROCESS_FAILURE)(lambda step, msg: failures.append(msg))
    sch = Scheduler()
    step = ExitsHard(code=3)
    with make_worker(sch, force_multiprocessing=True) as w:
        w.add(step)
        assert w.run() is False
    expected = f"Step {step.step_id} died unexpectedly with exit code 3"
    assert failures == [expected]
    assert set(sch.step_list(FAILED, "")) == {step.step_id}
    assert expected in sch.fetch_error(step.step_id)["error"]


def test_child_killed_by_sigkill_is_a_process_failure() -> None:
    sch = Scheduler()
    with make_worker(sch, worker_processes=2) as w:
        w.add(KillsItself())
        assert w.run() is False
    assert "died unexpectedly with exit code -9" in sch.fetch_error(KillsItself().step_id)["error"]


def test_child_that_exits_cleanly_without_a_result_is_a_failure() -> None:
    sch = Scheduler()
    step = ExitsHard(code=0)
    with make_worker(sch, force_multiprocessing=True) as w:
        w.add(step)
        assert w.run() is False
    assert "died unexpectedly with exit code 0" in sch.fetch_error(step.step_id)["error"]


def test_timeout_also_terminates_processes_the_step_started(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    with make_worker() as w:
        w.add(StartsGrandchild(str(tmp_path)))
        assert w.run() is False
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the step's own child survived the timeout"
        time.sleep(0.05)


def test_other_steps_keep_running_when_one_child_crashes(tmp_path: Path) -> None:
    with make_worker(worker_processes=2) as w:
        w.add(ExitsHard(code=5))
        w.add(FileStep(str(tmp_path), "survivor"))
        assert w.run() is False
    assert (tmp_path / "survivor").exists()


# -- fork safety ---------------------------------------------------------------------

_threads_at_fork: list[list[str]] = []
_recording_forks = False


def _record_threads_before_fork() -> None:
    if _recording_forks:
        _threads_at_fork.append([t.name for t in threading.enumerate()])


os.register_at_fork(before=_record_threads_before_fork)


@pytest.fixture
def fork_recorder() -> Any:
    global _recording_forks
    _threads_at_fork.clear()
    _recording_forks = True
    yield _threads_at_fork
    _recording_forks = False


def test_no_thread_is_alive_when_the_worker_forks_a_step(tmp_path: Path, fork_recorder: list[list[str]]) -> None:
    with make_worker(ping_interval=0.01) as w:
        # In-process first (the ping thread runs), then a step that must fork.
        w.add(Sleeper(seconds=0.05))
        w.add(QuickTimeout(seconds=0.01))
        w.run()
    assert fork_recorder and all(names == ["MainThread"] for names in fork_recorder)


def test_worker_falls_back_to_spawn_while_other_threads_run(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    bystander = threading.Thread(target=stop.wait, name="bystander", daemon=True)
    bystander.start()
    try:
        with make_worker(force_multiprocessing=True) as w:
            w.add(ReadsItsLockedFile(str(tmp_path)))
            assert w.run()
    finally:
        stop.set()
        bystander.join()
    assert "'spawn'" in caplog.text and "bystander" in caplog.text
    assert (tmp_path / "spawned").read_text() != str(os.getpid())


# -- parallel scheduling ---------------------------------------------------------------


def test_parallel_scheduling_checks_complete_in_other_processes(tmp_path: Path,
                                                                 fork_recorder: list[list[str]]) -> None:
    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(CheckedInPool(str(tmp_path), 3), multiprocess=True, processes=2)
    checked = [p.name for p in tmp_path.iterdir()]
    assert sorted(name.split("-")[1] for name in checked) == ["0", "1", "2", "3"]
    assert all(name.split("-")[2] != str(os.getpid()) for name in checked)
    assert len(sch.step_list("PENDING", "")) == 4
    assert all(names == ["MainThread"] for names in fork_recorder)


def test_parallel_scheduling_reports_unpicklable_step_as_scheduling_failure() -> None:
    class MpLocalClass(trun.Step):  # defined in a function: cannot be pickled
        def complete(self) -> bool:
            return False

    sch = Scheduler()
    with make_worker(sch) as w:
        assert w.add(MpLocalClass(), multiprocess=True, processes=1) is False
    assert set(sch.step_list(UNKNOWN, "")) == {MpLocalClass().step_id}


def test_parallel_scheduling_logs_no_spawn_warning_without_threads(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trun-interface"):
        with make_worker() as w:
            w.add(CheckedInPool(str(tmp_path), 0), multiprocess=True, processes=1)
    assert "spawn" not in caplog.text
