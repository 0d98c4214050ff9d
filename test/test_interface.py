"""``trun.build`` / ``trun.run`` and the ``[core]`` settings, in process."""
from __future__ import annotations

import logging
import os
import tempfile

import pytest

import trun
from trun.execution_summary import TrunRunResult
from trun.interface import PidLockAlreadyTakenExit, _WorkerSchedulerFactory, core
from trun.parameter import UnknownParameterException
from trun.progress import LogProgress
from trun.testing import with_config


class Touch(trun.Step):
    """Writes its ``path``."""

    path = trun.Parameter()

    def output(self):
        return trun.LocalTarget(self.path)

    def run(self):
        with self.output().open("w") as f:
            f.write("done")


class AlwaysFails(trun.Step):
    def run(self):
        raise RuntimeError("nope")


class RecordingFactory(_WorkerSchedulerFactory):
    """The default factory, remembering what it was asked for."""

    def __init__(self):
        self.calls = []

    def create_local_scheduler(self):
        self.calls.append(("local",))
        return super().create_local_scheduler()

    def create_remote_scheduler(self, url):
        self.calls.append(("remote", url))
        return super().create_local_scheduler()  # no trund needed to check the url

    def create_worker(self, scheduler, worker_processes, assistant=False):
        self.calls.append(("worker", worker_processes, assistant))
        self.worker = super().create_worker(scheduler, worker_processes, assistant)
        return self.worker


def build(steps, **kwargs):
    kwargs.setdefault("local_scheduler", True)
    kwargs.setdefault("no_progress", True)
    return trun.build(steps, **kwargs)


# -- build -----------------------------------------------------------------------------

def test_build_returns_true_when_every_step_succeeds(tmp_path):
    assert build([Touch(path=str(tmp_path / "a")), Touch(path=str(tmp_path / "b"))]) is True
    assert (tmp_path / "a").read_text() == "done" and (tmp_path / "b").exists()


def test_build_returns_false_when_a_step_fails():
    assert build([AlwaysFails()]) is False


def test_build_with_detailed_summary_returns_the_run_result(tmp_path):
    result = build([Touch(path=str(tmp_path / "a"))], detailed_summary=True)
    assert isinstance(result, TrunRunResult)
    assert result.status == trun.TrunStatusCode.SUCCESS
    assert result.scheduling_succeeded is True
    assert "ran successfully" in result.summary_text


def test_build_rejects_a_single_step_instead_of_a_list(tmp_path):
    with pytest.raises(TypeError, match=r"trun.build\(\[MyStep\(\)\]\)"):
        trun.build(Touch(path=str(tmp_path / "a")), local_scheduler=True)


def test_build_rejects_unknown_core_settings():
    with pytest.raises(UnknownParameterException, match="local_schedular"):
        trun.build([], local_schedular=True)


def test_build_does_not_take_the_pid_lock_by_default(tmp_path):
    build([Touch(path=str(tmp_path / "a"))], lock_pid_dir=str(tmp_path / "locks"))
    assert not (tmp_path / "locks").exists()


def test_build_takes_the_pid_lock_when_asked(tmp_path):
    build([Touch(path=str(tmp_path / "a"))], no_lock=False, lock_pid_dir=str(tmp_path / "locks"))
    assert [p.suffix for p in (tmp_path / "locks").iterdir()] == [".pid"]


def test_build_raises_pid_lock_already_taken_when_the_lock_is_full(tmp_path):
    with pytest.raises(PidLockAlreadyTakenExit):
        build([Touch(path=str(tmp_path / "a"))], no_lock=False, lock_size=0,
              lock_pid_dir=str(tmp_path / "locks"))
    assert not (tmp_path / "a").exists()


def test_build_uses_the_given_factory_and_worker_count(tmp_path):
    factory = RecordingFactory()
    build([Touch(path=str(tmp_path / "a"))], worker_scheduler_factory=factory, workers=3)
    assert factory.calls == [("local",), ("worker", 3, False)]


def test_remote_scheduler_url_is_built_from_host_and_port(tmp_path):
    factory = RecordingFactory()
    build([Touch(path=str(tmp_path / "a"))], worker_scheduler_factory=factory, local_scheduler=False,
          scheduler_host="sched.example", scheduler_port=9000)
    assert factory.calls[0] == ("remote", "http://sched.example:9000/")


def test_scheduler_url_wins_over_host_and_port(tmp_path):
    factory = RecordingFactory()
    build([Touch(path=str(tmp_path / "a"))], worker_scheduler_factory=factory, local_scheduler=False,
          scheduler_host="ignored", scheduler_url="https://sched.example/base/")
    assert factory.calls[0] == ("remote", "https://sched.example/base/")


def test_build_against_a_real_trund(tmp_path, trund):
    assert trun.build([Touch(path=str(tmp_path / "a"))], scheduler_url=trund.url, no_progress=True) is True
    assert (tmp_path / "a").exists()


def test_build_with_several_workers_runs_every_step(tmp_path):
    steps = [Touch(path=str(tmp_path / f"f{i}")) for i in range(4)]
    assert build(steps, workers=2) is True
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("f")) == ["f0", "f1", "f2", "f3"]


def test_progress_reporter_is_attached_unless_no_progress(tmp_path):
    factory = RecordingFactory()
    build([Touch(path=str(tmp_path / "a"))], worker_scheduler_factory=factory, no_progress=False)
    assert [type(r) for r in factory.worker.reporters] == [LogProgress]
    build([Touch(path=str(tmp_path / "b"))], worker_scheduler_factory=factory, no_progress=True)
    assert factory.worker.reporters == []


def test_log_progress_is_not_attached_when_its_lines_would_not_be_shown(tmp_path):
    # Logging is set up once per process, so the test sets the level of the logger itself.
    interface_logger = logging.getLogger("trun-interface")
    previous = interface_logger.level
    factory = RecordingFactory()
    try:
        interface_logger.setLevel(logging.WARNING)
        build([Touch(path=str(tmp_path / "a"))], worker_scheduler_factory=factory, no_progress=False)
        assert factory.worker.reporters == []
        interface_logger.setLevel(logging.INFO)
        build([Touch(path=str(tmp_path / "b"))], worker_scheduler_factory=factory, no_progress=False)
        assert [type(r) for r in factory.worker.reporters] == [LogProgress]
    finally:
        interface_logger.setLevel(previous)


# -- run ---------------------------------------------------------------------------------

class RunTarget(trun.Step):
    """A root step addressed by family name on the command line."""

    where = trun.Parameter()

    def output(self):
        return trun.LocalTarget(self.where)

    def run(self):
        with self.output().open("w") as f:
            f.write("ran")


def test_run_parses_a_command_line_list(tmp_path):
    target = tmp_path / "out"
    assert trun.run(["RunTarget", "--where", str(target), "--local-scheduler", "--no-lock",
                     "--no-progress"]) is True
    assert target.read_text() == "ran"


def test_run_with_main_step_cls_and_local_scheduler(tmp_path):
    target = tmp_path / "out"
    args = ["--where", str(target), "--no-lock", "--no-progress"]
    assert trun.run(args, main_step_cls=RunTarget, local_scheduler=True) is True
    assert target.exists()
    assert args == ["--where", str(target), "--no-lock", "--no-progress"]  # the caller's list is untouched


def test_run_with_detailed_summary_returns_the_run_result(tmp_path):
    result = trun.run(["RunTarget", "--where", str(tmp_path / "o"), "--no-lock", "--no-progress"],
                      local_scheduler=True, detailed_summary=True)
    assert isinstance(result, TrunRunResult)
    assert result.status == trun.TrunStatusCode.SUCCESS


def test_run_rejects_a_command_line_string():
    with pytest.raises(TypeError, match="list or tuple"):
        trun.run("RunTarget --where x")


def test_run_warns_that_use_dynamic_argparse_is_deprecated(tmp_path):
    with pytest.warns(DeprecationWarning, match="use_dynamic_argparse"):
        trun.run(["RunTarget", "--where", str(tmp_path / "o"), "--no-lock", "--no-progress"],
                 local_scheduler=True, use_dynamic_argparse=True)


def test_run_takes_the_pid_lock(tmp_path):
    with pytest.raises(PidLockAlreadyTakenExit):
        trun.run(["RunTarget", "--where", str(tmp_path / "o"), "--local-scheduler", "--no-progress",
                  "--lock-size", "0", "--lock-pid-dir", str(tmp_path / "locks")])


# -- [core] -------------------------------------------------------------------------------

def test_core_defaults_match_luigi():
    c = core()
    assert (c.local_scheduler, c.scheduler_host, c.scheduler_port, c.scheduler_url) == (False, "localhost", 8082, "")
    assert (c.lock_size, c.no_lock, c.take_lock, c.workers) == (1, False, False, 1)
    assert c.lock_pid_dir == os.path.join(tempfile.gettempdir(), "trun-locks")
    assert (c.logging_conf_file, c.log_level, c.module) == ("", "DEBUG", "")
    assert (c.parallel_scheduling, c.parallel_scheduling_processes, c.assistant) == (False, 0, False)
    assert (c.help, c.help_all, c.no_progress) == (False, False, False)


def test_core_reads_the_core_section():
    with with_config({"core": {"workers": "5", "scheduler_host": "sched.example", "no_progress": "true"}}):
        c = core()
        assert (c.workers, c.scheduler_host, c.no_progress) == (5, "sched.example", True)


def test_core_reads_luigis_old_default_scheduler_keys():
    with with_config({"core": {"default-scheduler-port": "9999"}}):
        assert core().scheduler_port == 9999


def test_core_rejects_an_unknown_log_level():
    with with_config({"core": {"log_level": "LOUD"}}), pytest.raises(ValueError, match="LOUD"):
        core()
