"""Tests of trun.contrib.external_program, running real programs."""
from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import trun
from trun.contrib.external_program import (
    ExternalProgramRunContext,
    ExternalProgramRunError,
    ExternalProgramStep,
    ExternalPythonProgramStep,
)

PYTHON = sys.executable


def python_step(code, name="PythonCodeStep", base=ExternalProgramStep, **attributes):
    """A step class running ``python -c code``; a new class each call, so tests do not share instances."""

    def program_args(self):
        return [PYTHON, "-c", textwrap.dedent(code)]

    return type(name, (base,), {"program_args": program_args, **attributes})


@pytest.fixture
def interface_log(caplog):
    caplog.set_level(logging.INFO, logger="trun-interface")
    return caplog


def messages(caplog):
    return [record.getMessage() for record in caplog.records]


def wait_until_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


# --- running and failing ---------------------------------------------------------------------

def test_program_args_are_passed_as_a_list_converted_to_str(tmp_path):
    out = tmp_path / "argv.json"

    class RecordArguments(ExternalProgramStep):
        def program_args(self):
            return [PYTHON, "-c", "import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))", out, 3, "a b"]

    RecordArguments().run()
    assert json.loads(out.read_text()) == [str(out), "3", "a b"]


def test_successful_program_creates_its_output(tmp_path):
    class TouchStep(ExternalProgramStep):
        file_path = trun.Parameter()

        def program_args(self):
            return ["touch", self.output().path]

        def output(self):
            return trun.LocalTarget(self.file_path)

    step = TouchStep(file_path=str(tmp_path / "touched"))
    step.run()
    assert step.output().exists()


def test_failure_raises_error_with_command_return_code_and_outputs():
    step_class = python_step("""
        import sys
        print("some output")
        print("went wrong", file=sys.stderr)
        sys.exit(3)
    """, name="FailingStep")
    with pytest.raises(ExternalProgramRunError) as raised:
        step_class().run()
    text = str(raised.value)
    assert "return code=3" in text
    assert f"COMMAND: {PYTHON} -c" in text
    assert "STDOUT: some output" in text
    assert "STDERR: went wrong" in text


def test_failure_error_keeps_outputs_command_and_environment_as_attributes():
    class ExitThree(ExternalProgramStep):
        def program_args(self):
            return ["sh", "-c", "echo out; echo err >&2; exit 3"]

    with pytest.raises(ExternalProgramRunError) as raised:
        ExitThree().run()
    error = raised.value
    assert (error.out, error.err) == ("out\n", "err\n")
    assert list(error.args) == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert error.env["PATH"] == os.environ["PATH"]


def test_error_message_names_changed_environment_variables_but_not_their_values():
    class SecretEnvironment(ExternalProgramStep):
        def program_args(self):
            return ["sh", "-c", "exit 1"]

        def program_environment(self):
            return dict(os.environ, API_TOKEN="hunter2")

    with pytest.raises(ExternalProgramRunError) as raised:
        SecretEnvironment().run()
    assert "ENVIRONMENT: set or changed: API_TOKEN" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_error_message_keeps_the_end_of_very_long_output():
    step_class = python_step("import sys; sys.stdout.write('x' * 50000 + 'THE END'); sys.exit(1)", name="Chatty")
    with pytest.raises(ExternalProgramRunError) as raised:
        step_class().run()
    text = str(raised.value)
    assert "characters omitted" in text and "THE END" in text
    assert len(raised.value.out) == 50007


def test_undecodable_output_does_not_hide_the_failure():
    step_class = python_step("import sys; sys.stdout.buffer.write(b'\\xff\\xfe'); sys.exit(2)", name="Binary")
    with pytest.raises(ExternalProgramRunError, match="return code=2"):
        step_class().run()


def test_missing_program_raises_file_not_found_naming_it():
    class NoSuchProgram(ExternalProgramStep):
        def program_args(self):
            return ["/no/such/program-xyz"]

    with pytest.raises(FileNotFoundError, match="program-xyz"):
        NoSuchProgram().run()


def test_program_args_must_be_implemented():
    with pytest.raises(NotImplementedError, match="ExternalProgramStep must implement program_args"):
        ExternalProgramStep().run()


def test_program_args_as_a_string_is_rejected_with_suggestion():
    class StringArgs(ExternalProgramStep):
        def program_args(self):
            return "ls -l /tmp"

    with pytest.raises(TypeError, match=r"not the string 'ls -l /tmp'; did you mean \['ls', '-l', '/tmp'\]"):
        StringArgs().run()


def test_empty_program_args_are_rejected():
    class NoArgs(ExternalProgramStep):
        def program_args(self):
            return []

    with pytest.raises(ValueError, match="returned no arguments"):
        NoArgs().run()


def test_program_environment_is_used(tmp_path):
    out = tmp_path / "env"

    class WithEnvironment(ExternalProgramStep):
        def program_args(self):
            return ["sh", "-c", f'printf %s "$GREETING" > {out}']

        def program_environment(self):
            return dict(os.environ, GREETING="hello")

    WithEnvironment().run()
    assert out.read_text() == "hello"


# --- output capture and logging ------------------------------------------------------------------

def test_stdout_and_stderr_are_logged_on_success_by_default(interface_log):
    python_step("import sys; print('to out'); print('to err', file=sys.stderr)", name="Talkative")().run()
    logged = messages(interface_log)
    assert "Program stdout:\nto out\n" in logged
    assert "Program stderr:\nto err\n" in logged
    assert any(message.startswith("Running command: ") for message in logged)


def test_stderr_is_not_logged_on_success_when_always_log_stderr_is_false(interface_log):
    step_class = python_step("import sys; print('warning', file=sys.stderr)", name="QuietOnSuccess",
                             always_log_stderr=False)
    step_class().run()
    assert not any(message.startswith("Program stderr:") for message in messages(interface_log))


def test_stderr_is_logged_on_failure_when_always_log_stderr_is_false(interface_log):
    step_class = python_step("import sys; print('broken', file=sys.stderr); sys.exit(1)", name="LoudOnFailure",
                             always_log_stderr=False)
    with pytest.raises(ExternalProgramRunError):
        step_class().run()
    assert "Program stderr:\nbroken\n" in messages(interface_log)


def test_capture_output_false_lets_output_through(capfd):
    step_class = python_step("print('straight through')", name="Uncaptured")
    step_class(capture_output=False).run()
    assert "straight through" in capfd.readouterr().out


def test_failure_without_capture_reports_empty_outputs():
    step_class = python_step("import sys; sys.exit(4)", name="UncapturedFailure")
    with pytest.raises(ExternalProgramRunError) as raised:
        step_class(capture_output=False).run()
    assert raised.value.out is None
    assert "STDOUT: [empty]" in str(raised.value)


def test_output_parameters_are_not_significant():
    step_class = python_step("pass", name="Insignificant")
    plain = step_class()
    tuned = step_class(capture_output=False, stream_for_searching_tracking_url="stdout",
                       tracking_url_pattern="(.*)")
    assert plain.step_id == tuned.step_id


def test_stream_for_searching_tracking_url_rejects_unknown_stream():
    step_class = python_step("pass", name="BadStream")
    with pytest.raises(trun.parameter.ParameterException):
        step_class(stream_for_searching_tracking_url="stdin")


# --- tracking URL ----------------------------------------------------------------------------------

def run_recording_urls(step):
    urls = []
    step.set_tracking_url = urls.append  # what the worker injects while the step runs
    step.run()
    return urls


def test_tracking_url_found_on_stdout_with_capture(interface_log):
    step_class = python_step("print('starting'); print('ANYTHING'); print('done')", name="UrlOnStdout")
    step = step_class(stream_for_searching_tracking_url="stdout", tracking_url_pattern=r"ANY(.*)")
    assert run_recording_urls(step) == ["THING"]
    assert "Program stdout:\nstarting\nANYTHING\ndone\n" in messages(interface_log)


def test_tracking_url_found_on_stdout_without_capture(capfd):
    step_class = python_step("print('SOME TEXT')", name="UrlUncaptured")
    step = step_class(capture_output=False, stream_for_searching_tracking_url="stdout",
                      tracking_url_pattern=r"SOME (.*)")
    assert run_recording_urls(step) == ["TEXT"]
    assert "SOME TEXT" in capfd.readouterr().out


def test_tracking_url_found_on_stderr_and_stderr_still_captured():
    step_class = python_step("import sys; print('ANYTHING_ELSE', file=sys.stderr); sys.exit(1)", name="UrlOnStderr")
    step = step_class(stream_for_searching_tracking_url="stderr", tracking_url_pattern=r"ANY(.*)")
    with pytest.raises(ExternalProgramRunError) as raised:
        run_recording_urls(step)
    assert raised.value.err == "ANYTHING_ELSE\n"


def test_tracking_url_reported_on_stderr():
    step_class = python_step("import sys; print('ANYTHING_ELSE', file=sys.stderr)", name="UrlOnStderrOk")
    step = step_class(stream_for_searching_tracking_url="stderr", tracking_url_pattern=r"ANY(.*)")
    assert run_recording_urls(step) == ["THING_ELSE"]


def test_build_tracking_url_transforms_the_match():
    step_class = python_step("print('Hello, world!')", name="UrlBuilder",
                             build_tracking_url=lambda self, found: f"The {found} is mine")
    step = step_class(stream_for_searching_tracking_url="stdout", tracking_url_pattern=r"Hello, (.*)!")
    assert run_recording_urls(step) == ["The world is mine"]


def test_pattern_without_group_reports_whole_match():
    step_class = python_step("print('see http://jobs/42 for details')", name="UrlNoGroup")
    step = step_class(stream_for_searching_tracking_url="stdout", tracking_url_pattern=r"http://\S+")
    assert run_recording_urls(step) == ["http://jobs/42"]


def test_no_scanning_without_a_pattern(interface_log):
    step_class = python_step("print('ANYTHING')", name="UrlNoPattern")
    step = step_class(stream_for_searching_tracking_url="stdout")
    assert run_recording_urls(step) == []
    assert "Program stdout:\nANYTHING\n" in messages(interface_log)


def test_invalid_tracking_url_pattern_is_reported_before_running(tmp_path):
    marker = tmp_path / "ran"

    class BadPattern(ExternalProgramStep):
        def program_args(self):
            return ["touch", marker]

    with pytest.raises(ValueError, match=r"tracking_url_pattern '\(unclosed' is not a valid regular expression"):
        BadPattern(stream_for_searching_tracking_url="stdout", tracking_url_pattern="(unclosed").run()
    assert not marker.exists()


def test_tracking_url_outside_a_worker_is_only_logged(interface_log):
    step_class = python_step("print('url: http://x')", name="UrlNoWorker")
    step_class(stream_for_searching_tracking_url="stdout", tracking_url_pattern=r"url: (\S+)").run()
    assert any("Tracking URL of" in message and "http://x" in message for message in messages(interface_log))


# --- killing the program ------------------------------------------------------------------------------

SLEEPER = """
import os, sys, time
open(sys.argv[1], 'w').write(str(os.getpid()))
time.sleep(60)
"""


def wait_for_pid_file(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written in time")


def test_sigterm_kills_program_and_exits_with_128_plus_signal(tmp_path):
    pid_file = tmp_path / "pid"
    script = tmp_path / "run_step.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from trun.contrib.external_program import ExternalProgramStep

        class Sleeper(ExternalProgramStep):
            def program_args(self):
                return [sys.executable, "-c", {SLEEPER!r}, {str(pid_file)!r}]

        Sleeper().run()
    """))
    step_process = subprocess.Popen([PYTHON, str(script)])
    try:
        program_pid = wait_for_pid_file(pid_file)
        step_process.send_signal(signal.SIGTERM)
        assert step_process.wait(timeout=10) == 128 + signal.SIGTERM
        assert wait_until_gone(program_pid)
    finally:
        if step_process.poll() is None:
            step_process.kill()
            step_process.wait()


def test_keyboard_interrupt_kills_program(tmp_path):
    pid_file = tmp_path / "pid"
    step_class = python_step(SLEEPER, name="Interrupted")
    step_class.program_args = lambda self: [PYTHON, "-c", SLEEPER, pid_file]

    def interrupt_once_program_runs(signum, frame):
        if pid_file.exists() and pid_file.read_text():
            raise KeyboardInterrupt
        signal.setitimer(signal.ITIMER_REAL, 0.02)

    previous = signal.signal(signal.SIGALRM, interrupt_once_program_runs)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        with pytest.raises(KeyboardInterrupt):
            step_class().run()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert wait_until_gone(wait_for_pid_file(pid_file))


def test_run_context_restores_previous_sigterm_handler():
    def handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        proc = subprocess.Popen(["sh", "-c", "exit 0"])
        with ExternalProgramRunContext(proc):
            assert signal.getsignal(signal.SIGTERM) != handler
            proc.wait()
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_run_context_kills_program_when_an_exception_leaves_it():
    proc = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"])
    with pytest.raises(RuntimeError):
        with ExternalProgramRunContext(proc):
            raise RuntimeError("step failed")
    assert proc.poll() is not None


# --- ExternalPythonProgramStep ---------------------------------------------------------------------

ENV_DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


def python_environment_of(tmp_path, **params):
    out = tmp_path / "env.json"

    class DumpEnvironment(ExternalPythonProgramStep):
        def program_args(self):
            return [PYTHON, "-c", ENV_DUMP, out]

    DumpEnvironment(**params).run()
    return json.loads(out.read_text())


def test_extra_pythonpath_is_prepended_to_existing_pythonpath(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/base/pythonpath")
    env = python_environment_of(tmp_path, extra_pythonpath="/extra/pythonpath")
    assert env["PYTHONPATH"] == os.pathsep.join(["/extra/pythonpath", "/base/pythonpath"])


def test_extra_pythonpath_is_set_alone_when_there_was_none(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    env = python_environment_of(tmp_path, extra_pythonpath="/extra/pythonpath")
    assert env["PYTHONPATH"] == "/extra/pythonpath"


def test_extra_pythonpath_makes_modules_importable(tmp_path):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "helper_for_trun_test.py").write_text("VALUE = 'imported'\n")
    out = tmp_path / "out"

    class UsesHelper(ExternalPythonProgramStep):
        def program_args(self):
            return [PYTHON, "-c", f"import helper_for_trun_test as h; open({str(out)!r}, 'w').write(h.VALUE)"]

    UsesHelper(extra_pythonpath=str(modules)).run()
    assert out.read_text() == "imported"


def test_virtualenv_is_put_first_on_path_and_pythonhome_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/base/path" + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("PYTHONHOME", "/bogus/home")  # would break the child if it were kept
    monkeypatch.setenv("OTHERVAR", "otherval")
    env = python_environment_of(tmp_path, virtualenv="/path/to/venv")
    assert env["PATH"].startswith(os.path.join("/path/to/venv", "bin") + os.pathsep + "/base/path")
    assert env["VIRTUAL_ENV"] == "/path/to/venv"
    assert "PYTHONHOME" not in env
    assert env["OTHERVAR"] == "otherval"


def test_python_step_parameters_are_optional_and_change_nothing_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/unchanged")
    env = python_environment_of(tmp_path)
    assert env["PYTHONPATH"] == "/unchanged"
    assert "VIRTUAL_ENV" not in env or env["VIRTUAL_ENV"] == os.environ.get("VIRTUAL_ENV")


# --- in a real workflow --------------------------------------------------------------------------------

def test_build_runs_external_program_step_and_reports_failure(tmp_path):
    pytest.importorskip("trun.worker")
    pytest.importorskip("trun.scheduler")

    class WriteWithProgram(ExternalProgramStep):
        path = trun.Parameter()

        def program_args(self):
            return ["sh", "-c", f"printf done > {self.path}"]

        def output(self):
            return trun.LocalTarget(self.path)

    class FailWithProgram(ExternalProgramStep):
        def program_args(self):
            return ["sh", "-c", "exit 3"]

        def output(self):
            return trun.LocalTarget(tmp_path / "never")

    assert trun.build([WriteWithProgram(path=str(tmp_path / "o"))], local_scheduler=True)
    assert pathlib.Path(tmp_path / "o").read_text() == "done"
    assert not trun.build([FailWithProgram()], local_scheduler=True)
