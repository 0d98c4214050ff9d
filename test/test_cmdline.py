"""The ``trun`` command end to end: real processes, a module written to ``tmp_path``."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

STEPS = textwrap.dedent("""
    import os, time
    import trun

    class Suffix(trun.Config):
        text = trun.Parameter(default="plain")

    class Greet(trun.Step):
        name = trun.Parameter(description="Who to greet")
        times = trun.IntParameter(default=1, description="How many times")

        def output(self):
            return trun.LocalTarget(f"out/greet-{self.name}.txt")

        def run(self):
            with self.output().open("w") as f:
                f.write(f"{self.name} x{self.times} suffix={Suffix().text}")

    class Upstream(trun.Step):
        size = trun.IntParameter(default=1)

        def output(self):
            return trun.LocalTarget(f"out/upstream-{self.size}.txt")

        def run(self):
            with self.output().open("w") as f:
                f.write("up")

    class Downstream(trun.Step):
        def requires(self):
            return Upstream()

        def output(self):
            return trun.LocalTarget("out/downstream.txt")

        def run(self):
            with self.output().open("w") as f:
                f.write("down")

    class Sleepy(trun.Step):
        \"\"\"Announces it started, then waits for the test to create out/release-<tag>.\"\"\"
        tag = trun.Parameter()

        def output(self):
            return trun.LocalTarget(f"out/sleepy-{self.tag}-{os.getpid()}.txt")

        def run(self):
            os.makedirs("out", exist_ok=True)
            with open(f"out/started-{self.tag}", "a") as f:
                f.write(f"{os.getpid()}\\n")
            deadline = time.time() + 60
            while not os.path.exists(f"out/release-{self.tag}") and time.time() < deadline:
                time.sleep(0.02)
            with self.output().open("w") as f:
                f.write("slept")

    class Pair(trun.WrapperStep):
        \"\"\"Two steps that can only finish if they run at the same time.\"\"\"
        def requires(self):
            return [Meet(who="a", other="b"), Meet(who="b", other="a")]

    class Meet(trun.Step):
        who = trun.Parameter()
        other = trun.Parameter()

        def output(self):
            return trun.LocalTarget(f"out/met-{self.who}.txt")

        def run(self):
            os.makedirs("out", exist_ok=True)
            open(f"out/here-{self.who}", "w").close()
            deadline = time.time() + 30
            while not os.path.exists(f"out/here-{self.other}"):
                if time.time() > deadline:
                    raise RuntimeError("the other step never ran alongside")
                time.sleep(0.02)
            with self.output().open("w") as f:
                f.write("met")
""")


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "cli_steps.py").write_text(STEPS)
    return tmp_path


def env_for(cwd: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(cwd))


def trun_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trun", "--module", "cli_steps", *args]


def run_trun(cwd: Path, *args: str, local: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    extra = ["--local-scheduler", "--no-progress"] if local else []
    return subprocess.run(trun_cmd(*args, *extra), cwd=cwd, env=env_for(cwd), capture_output=True,
                          text=True, timeout=timeout)


def assert_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, usage, exactly one ``trun: error:`` line (the last), no traceback; returns that line."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("usage: trun")
    errors = [line for line in lines if line.startswith("trun: error: ")]
    assert errors == [lines[-1]]
    for fragment in fragments:
        assert fragment in lines[-1]
    return lines[-1]


def wait_for(path: Path, timeout: float = 30, lines: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= lines:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get {lines} line(s) in time")


# -- running ----------------------------------------------------------------------

def test_root_step_flags_become_its_parameters(workdir):
    result = run_trun(workdir, "Greet", "--name", "ann", "--times", "2")
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-ann.txt").read_text() == "ann x2 suffix=plain"
    assert "===== Trun Execution Summary =====" in result.stderr


def test_class_flag_sets_the_parameter_of_a_dependency(workdir):
    result = run_trun(workdir, "Downstream", "--Upstream-size", "3")
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "upstream-3.txt").exists()


def test_class_flag_sets_a_config_class_value(workdir):
    result = run_trun(workdir, "Greet", "--name", "bo", "--Suffix-text", "fancy")
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-bo.txt").read_text() == "bo x1 suffix=fancy"


def test_local_scheduler_can_come_from_the_config_file(workdir):
    (workdir / "trun.cfg").write_text("[core]\nlocal_scheduler = true\n")
    result = subprocess.run(trun_cmd("Greet", "--name", "cfg", "--no-progress"), cwd=workdir,
                            env=env_for(workdir), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-cfg.txt").exists()


def test_workers_flag_runs_steps_at_the_same_time(workdir):
    result = run_trun(workdir, "Pair", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "met-a.txt").exists() and (workdir / "out" / "met-b.txt").exists()


def test_log_level_flag_silences_info_lines(workdir):
    result = run_trun(workdir, "Greet", "--name", "quiet", "--log-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "INFO:" not in result.stderr and "DEBUG:" not in result.stderr
    assert (workdir / "out" / "greet-quiet.txt").exists()


def test_logging_conf_file_flag_configures_logging(workdir):
    logfile = workdir / "trun.log"
    conf = workdir / "logging.ini"
    conf.write_text(textwrap.dedent(f"""
        [loggers]
        keys=root
        [handlers]
        keys=file
        [formatters]
        keys=plain
        [logger_root]
        level=INFO
        handlers=file
        [handler_file]
        class=FileHandler
        formatter=plain
        args=({str(logfile)!r}, 'w')
        [formatter_plain]
        format=LOGGED %(message)s
    """))
    result = run_trun(workdir, "Greet", "--name", "logged", "--logging-conf-file", str(conf))
    assert result.returncode == 0, result.stderr
    assert "LOGGED" in logfile.read_text()
    assert "Trun Execution Summary" in logfile.read_text()
    assert "Trun Execution Summary" not in result.stderr


def test_trun_talks_to_a_central_scheduler(workdir, trund):
    result = run_trun(workdir, "Greet", "--name", "remote", "--scheduler-host", "127.0.0.1",
                      "--scheduler-port", str(trund.port), "--no-progress", local=False)
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-remote.txt").exists()


def test_scheduler_url_flag_overrides_host_and_port(workdir, trund):
    result = run_trun(workdir, "Greet", "--name", "url", "--scheduler-url", trund.url + "/",
                      "--scheduler-port", "1", "--no-progress", local=False)
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-url.txt").exists()


# -- the ways in --------------------------------------------------------------------

def test_bin_trun_launcher_runs_the_command(workdir):
    result = subprocess.run([sys.executable, str(REPO / "bin" / "trun"), "--module", "cli_steps", "Greet",
                             "--name", "bin", "--local-scheduler", "--no-progress"],
                            cwd=workdir, env=env_for(workdir), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-bin.txt").exists()


def test_trun_console_script_runs_the_command(workdir):
    script = shutil.which("trun")
    if script is None:
        pytest.skip("the trun console script is not installed in this environment")
    result = subprocess.run([script, "--module", "cli_steps", "Greet", "--name", "script",
                             "--local-scheduler", "--no-progress"],
                            cwd=workdir, env=env_for(workdir), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-script.txt").exists()


def test_trun_run_function_takes_an_argument_list(workdir):
    code = ("from trun.cmdline import trun_run; "
            "trun_run(['--module', 'cli_steps', 'Greet', '--name', 'fn', '--local-scheduler', '--no-lock'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env_for(workdir),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (workdir / "out" / "greet-fn.txt").exists()


def test_bin_trund_launcher_serves_the_scheduler(workdir, free_port):
    port = free_port
    proc = subprocess.Popen([sys.executable, str(REPO / "bin" / "trund"), "--address", "127.0.0.1",
                             "--port", str(port), "--state-path", str(workdir / "state")],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            result = run_trun(workdir, "Greet", "--name", "trund", "--scheduler-host", "127.0.0.1",
                              "--scheduler-port", str(port), "--no-progress", local=False)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# -- help -----------------------------------------------------------------------------

def test_help_prints_the_step_parameters_and_exits_0(workdir):
    result = run_trun(workdir, "Greet", "--help", local=False)
    assert result.returncode == 0, result.stderr
    assert "--name" in result.stdout and "Who to greet" in result.stdout
    assert "--times" in result.stdout
    assert "--scheduler-host" not in result.stdout


def test_help_all_lists_every_flag(workdir):
    result = run_trun(workdir, "Greet", "--help-all", local=False)
    assert result.returncode == 0, result.stderr
    for flag in ("--scheduler-host", "--workers", "--no-progress", "--Upstream-size", "--Suffix-text",
                 "--retcode-step-failed"):
        assert flag in result.stdout


# -- mistakes ---------------------------------------------------------------------

def test_unknown_step_suggests_the_right_family(workdir):
    assert_usage_error(run_trun(workdir, "Greeet", "--name", "x"), "Greeet", "Did you mean", "Greet")


def test_unknown_flag_is_named(workdir):
    assert_usage_error(run_trun(workdir, "Greet", "--name", "x", "--colour", "red"), "--colour")


def test_bad_value_names_the_parameter(workdir):
    assert_usage_error(run_trun(workdir, "Greet", "--name", "x", "--times", "many"), "times", "many")


def test_bad_value_of_a_core_flag_is_a_usage_error(workdir):
    assert_usage_error(run_trun(workdir, "Greet", "--name", "x", "--workers", "lots"), "workers")


def test_bad_value_of_a_class_flag_is_a_usage_error(workdir):
    assert_usage_error(run_trun(workdir, "Downstream", "--Upstream-size", "big"), "size", "big")


def test_missing_parameter_is_named(workdir):
    assert_usage_error(run_trun(workdir, "Greet"), "name")


def test_no_step_given_is_a_usage_error(workdir):
    assert_usage_error(run_trun(workdir), "No step")


def test_module_that_cannot_be_imported_is_named(workdir):
    result = subprocess.run([sys.executable, "-m", "trun", "--module", "no_such_module", "Greet",
                             "--local-scheduler"], cwd=workdir, env=env_for(workdir),
                            capture_output=True, text=True, timeout=60)
    assert_usage_error(result, "no_such_module")


def test_missing_logging_conf_file_is_a_usage_error(workdir):
    missing = workdir / "absent.ini"
    assert_usage_error(run_trun(workdir, "Greet", "--name", "x", "--logging-conf-file", str(missing)),
                       str(missing))


# -- the lock ------------------------------------------------------------------------

def start_sleepy(workdir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(trun_cmd("Sleepy", "--tag", "t", "--local-scheduler", "--no-progress",
                                     "--lock-pid-dir", str(workdir / "locks"), *extra),
                            cwd=workdir, env=env_for(workdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, workdir: Path) -> tuple[int, str, str]:
    (workdir / "out").mkdir(exist_ok=True)
    (workdir / "out" / "release-t").touch()
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_second_identical_command_says_already_running_and_exits_0(workdir):
    first = start_sleepy(workdir)
    try:
        wait_for(workdir / "out" / "started-t")
        second = start_sleepy(workdir)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert f"Pid(s) {{{first.pid}}} already running" in out
        assert not (workdir / "out" / f"sleepy-t-{second.pid}.txt").exists()
    finally:
        code, _, err = finish(first, workdir)
    assert code == 0, err


def test_identical_commands_started_together_run_once(workdir):
    procs = [start_sleepy(workdir) for _ in range(2)]
    wait_for(workdir / "out" / "started-t")
    time.sleep(0.5)  # room for a wrongly admitted second run to start too
    results = [finish(proc, workdir) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0]
    assert sum("already running" in out for _, out, _ in results) == 1
    assert len((workdir / "out" / "started-t").read_text().splitlines()) == 1


def test_already_running_exit_code_is_configurable(workdir):
    first = start_sleepy(workdir, "--retcode-already-running", "10")
    try:
        wait_for(workdir / "out" / "started-t")
        second = start_sleepy(workdir, "--retcode-already-running", "10")
        second.communicate(timeout=60)
        assert second.returncode == 10
    finally:
        finish(first, workdir)


def test_no_lock_lets_identical_commands_run_together(workdir):
    procs = [start_sleepy(workdir, "--no-lock") for _ in range(2)]
    try:
        wait_for(workdir / "out" / "started-t", lines=2)
    finally:
        results = [finish(proc, workdir) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0]


def test_lock_size_two_admits_two_identical_commands(workdir):
    procs = [start_sleepy(workdir, "--lock-size", "2") for _ in range(2)]
    try:
        wait_for(workdir / "out" / "started-t", lines=2)
    finally:
        results = [finish(proc, workdir) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0]


def test_lock_pid_file_lives_in_lock_pid_dir(workdir):
    code, _, err = finish(start_sleepy(workdir), workdir)
    assert code == 0, err
    assert [p.suffix for p in (workdir / "locks").iterdir()] == [".pid"]


def test_module_in_the_current_directory_is_found_without_pythonpath(tmp_path):
    (tmp_path / "cwd_steps.py").write_text(
        "import trun\n"
        "class InCwd(trun.Step):\n"
        "    def complete(self):\n"
        "        return True\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # bin/trun, like the installed console script, has its own directory as sys.path[0], not the cwd.
    launcher = Path(__file__).resolve().parent.parent / "bin" / "trun"
    result = subprocess.run([sys.executable, str(launcher),
                             "--module", "cwd_steps", "InCwd", "--local-scheduler", "--no-progress"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "complete ones were encountered" in result.stderr
