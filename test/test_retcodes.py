"""Exit codes of the ``trun`` command (``trun.retcodes.run_with_retcodes``)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import trun
from trun.retcodes import retcode, run_with_retcodes
from trun.testing import with_config


def exit_code(*argv: str) -> int:
    """Run the trun command line in this process and return its exit code."""
    with pytest.raises(SystemExit) as info:
        run_with_retcodes([*argv, "--local-scheduler", "--no-lock", "--no-progress"])
    return info.value.code


def define_outcomes(tag: str) -> dict[str, type]:
    """Step classes for each outcome, with families unique to the calling test."""

    class Ok(trun.Step):
        def complete(self):
            return self._ran

        _ran = False

        def run(self):
            type(self)._ran = True

    class Fails(trun.Step):
        def run(self):
            raise RuntimeError("step failed on purpose")

    class CannotSchedule(trun.Step):
        def complete(self):
            raise OSError("cannot tell whether complete")

    class Absent(trun.ExternalStep):
        def complete(self):
            return False

    class NeedsAbsent(trun.Step):
        def requires(self):
            return Absent()

    class NeedsAbsentAndFails(trun.WrapperStep):
        def requires(self):
            return [NeedsAbsent(), Fails()]

    class FailsAndCannotSchedule(trun.WrapperStep):
        def requires(self):
            return [Fails(), CannotSchedule()]

    class Greedy(trun.Step):
        resources = {"gpu": 1}

    # The command line names a root step by family: give each test its own.
    return {cls.__name__: type(f"{cls.__name__}{tag}", (cls,), {})
            for cls in (Ok, Fails, CannotSchedule, Absent, NeedsAbsent, NeedsAbsentAndFails,
                        FailsAndCannotSchedule, Greedy)}


@pytest.fixture
def steps(request):
    tag = "".join(ch for ch in request.node.name.title() if ch.isalnum())[:40]
    return define_outcomes(tag)


def family(cls: type) -> str:
    return cls.get_step_family()


def test_defaults_fail_loudly_only_for_failures_and_scheduling_errors():
    codes = retcode()
    assert (codes.unhandled_exception, codes.missing_data, codes.step_failed, codes.already_running,
            codes.scheduling_error, codes.not_run) == (4, 0, 30, 0, 35, 0)


def test_success_exits_0(steps):
    assert exit_code(family(steps["Ok"])) == 0


def test_failed_step_exits_30(steps):
    assert exit_code(family(steps["Fails"])) == 30


def test_scheduling_error_exits_35(steps):
    assert exit_code(family(steps["CannotSchedule"])) == 35


def test_missing_external_data_exits_0(steps):
    assert exit_code(family(steps["NeedsAbsent"])) == 0


def test_missing_data_code_is_configurable_in_the_config_file(steps):
    with with_config({"retcode": {"missing_data": "20"}}):
        assert exit_code(family(steps["NeedsAbsent"])) == 20


def test_step_failed_code_is_configurable_with_a_flag(steps):
    assert exit_code(family(steps["Fails"]), "--retcode-step-failed", "7") == 7


def test_the_largest_applicable_code_wins(steps):
    with with_config({"retcode": {"missing_data": "20"}}):
        assert exit_code(family(steps["NeedsAbsentAndFails"])) == 30
    with with_config({"retcode": {"missing_data": "20", "step_failed": "10"}}):
        assert exit_code(family(steps["NeedsAbsentAndFails"])) == 20


def test_failure_and_scheduling_error_exit_with_the_larger_code(steps):
    assert exit_code(family(steps["FailsAndCannotSchedule"])) == 35


def test_step_not_granted_run_permission_exits_not_run(steps):
    with with_config({"resources": {"gpu": "0"}, "retcode": {"not_run": "25"}}):
        assert exit_code(family(steps["Greedy"])) == 25


def test_unfinished_root_step_exits_not_run_when_no_other_code_applies(steps):
    with with_config({"retcode": {"step_failed": "0", "not_run": "25"}}):
        assert exit_code(family(steps["Fails"])) == 25


def test_usage_mistake_exits_2_whatever_the_retcodes(steps, capsys):
    with with_config({"retcode": {"unhandled_exception": "9"}}):
        assert exit_code("NoSuchFamilyAnywhere") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("trun: error: No step NoSuchFamilyAnywhere")


def test_help_exits_0(steps, capsys):
    assert exit_code(family(steps["Ok"]), "--help") == 0
    assert "usage:" in capsys.readouterr().out


# -- in real processes ---------------------------------------------------------------

MODULE = textwrap.dedent("""
    import os, time
    import trun

    class Explodes(trun.Step):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            raise RuntimeError("bug in the step's constructor")

    class Plain(trun.Step):
        def output(self):
            return trun.LocalTarget("plain.txt")
        def run(self):
            self.output().open("w").close()

    class Waits(trun.Step):
        def output(self):
            return trun.LocalTarget("waited.txt")
        def run(self):
            open("started", "w").close()
            deadline = time.time() + 60
            while not os.path.exists("release") and time.time() < deadline:
                time.sleep(0.02)
            self.output().open("w").close()
""")


def run_cli(tmp_path, *args, config: str = "", wait: bool = True):
    (tmp_path / "rc_steps.py").write_text(MODULE)
    if config:
        (tmp_path / "trun.cfg").write_text(textwrap.dedent(config))
    cmd = [sys.executable, "-m", "trun", "--module", "rc_steps", *args, "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_uncaught_exception_is_logged_and_exits_4(tmp_path):
    result = run_cli(tmp_path, "Explodes", "--local-scheduler")
    assert result.returncode == 4
    assert "ERROR: Uncaught exception in trun" in result.stderr
    assert "bug in the step's constructor" in result.stderr
    assert "Traceback" in result.stderr


def test_unhandled_exception_code_is_configurable(tmp_path):
    result = run_cli(tmp_path, "Explodes", "--local-scheduler", config="""
        [retcode]
        unhandled_exception = 9
    """)
    assert result.returncode == 9


def test_unreachable_scheduler_is_an_unhandled_exception(tmp_path, free_port):
    result = run_cli(tmp_path, "Plain", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(free_port),
                     config="""
        [core]
        rpc_retry_attempts = 1
        rpc_retry_wait = 0
        rpc_connect_timeout = 2
    """)
    assert result.returncode == 4
    assert "Uncaught exception in trun" in result.stderr
    assert not (tmp_path / "plain.txt").exists()


def test_step_run_by_another_worker_exits_already_running(tmp_path, trund):
    args = ("Waits", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(trund.port),
            "--retcode-already-running", "10")
    first = run_cli(tmp_path, *args, "--no-lock", wait=False)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.02)
        second = run_cli(tmp_path, *args)  # a different command line: the pid lock does not apply
        assert second.returncode == 10, second.stderr
        assert "were being run by another worker" in second.stderr
    finally:
        (tmp_path / "release").touch()
        first.communicate(timeout=60)
    assert first.returncode == 0
