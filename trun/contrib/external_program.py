"""Steps that run one external program: :class:`ExternalProgramStep` and :class:`ExternalPythonProgramStep`.

Override :meth:`ExternalProgramStep.program_args` to return the command line
as a list (the first element is the executable); optionally override
:meth:`ExternalProgramStep.program_environment`. A non-zero exit raises
:class:`ExternalProgramRunError`, whose message shows the command, the return
code and what the program printed. For pipelines of several commands, write an
ordinary step that calls them.

Hazards:

* By default the program's stdout and stderr are captured into temporary
  files and logged after it exits (``--capture-output false`` lets them through
  to the worker's own output instead).
* While the program runs, SIGTERM (what the worker sends on a timeout) kills
  it and exits with status ``128 + SIGTERM``; a KeyboardInterrupt or any other
  exception leaving the run also kills it, so no orphan keeps writing outputs.
  The SIGTERM handler can only be installed in the main thread; elsewhere the
  program is only killed on exceptions.
* Tracking-URL scanning (``stream_for_searching_tracking_url`` with a
  ``tracking_url_pattern``) reads the chosen stream line by line in the thread
  running the step, so that ``set_tracking_url`` is called where the worker
  expects it.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import IO, Any

import trun
from trun.parameter import ParameterVisibility

logger = logging.getLogger("trun-interface")

__all__ = ["ExternalProgramRunContext", "ExternalProgramRunError", "ExternalProgramStep",
           "ExternalPythonProgramStep"]

# The error message keeps the end of very long outputs; the full text stays on the exception.
_MAX_OUTPUT_IN_MESSAGE = 20_000


def _tail(text: str | None) -> str:
    if not text:
        return "[empty]"
    if len(text) <= _MAX_OUTPUT_IN_MESSAGE:
        return text
    omitted = len(text) - _MAX_OUTPUT_IN_MESSAGE
    return f"[... {omitted} characters omitted]\n{text[-_MAX_OUTPUT_IN_MESSAGE:]}"


class ExternalProgramRunError(RuntimeError):
    """An external program exited with a non-zero status.

    Attributes: ``message``, ``args`` (the command line as a list, as in Luigi),
    ``env`` (the environment it ran with), ``out`` and ``err`` (captured stdout
    and stderr as text, ``None`` when not captured).

    ``str()`` shows the message, the command, stdout and stderr (the last
    20 000 characters of each) and the names of the environment variables that
    differ from this process's environment. Values are not shown, since
    environments often carry credentials and the message reaches logs, e-mails
    and the scheduler.
    """

    def __init__(self, message: str, args: Sequence[str], env: Mapping[str, str] | None = None,
                 stdout: str | None = None, stderr: str | None = None) -> None:
        super().__init__(message, args, env, stdout, stderr)
        self.message = message
        self.args = args  # type: ignore[assignment]  # Luigi exposes the command as .args
        self.env = env
        self.out = stdout
        self.err = stderr

    def _environment_summary(self) -> str:
        if not self.env:
            return "[empty]"
        changed = sorted(name for name, value in self.env.items() if os.environ.get(name) != value)
        removed = sorted(name for name in os.environ if name not in self.env)
        parts = []
        if changed:
            parts.append("set or changed: " + ", ".join(changed))
        if removed:
            parts.append("removed: " + ", ".join(removed))
        return "; ".join(parts) if parts else "same as the worker's"

    def __str__(self) -> str:
        return "\n".join([
            self.message,
            f"COMMAND: {' '.join(self.args)}",
            f"STDOUT: {_tail(self.out)}",
            f"STDERR: {_tail(self.err)}",
            f"ENVIRONMENT: {self._environment_summary()}",
        ])


class ExternalProgramRunContext:
    """Context around a running program: kills it on SIGTERM, KeyboardInterrupt or any exception.

    On SIGTERM the process exits with status ``128 + SIGTERM`` after killing the
    program. The previous SIGTERM handler is restored on exit.
    """

    def __init__(self, proc: subprocess.Popen[Any]) -> None:
        self.proc = proc
        self._previous_handler: Any = None
        self._installed = False

    def __enter__(self) -> ExternalProgramRunContext:
        # signal handlers can only be set from the main thread
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self.kill_job)
            self._installed = True
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if exc_type is not None:
                self.kill_job()
                self._reap()
        finally:
            if self._installed:
                signal.signal(signal.SIGTERM, self._previous_handler)
                self._installed = False

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.warning("Program %s did not exit after being killed", self.proc.args)

    def kill_job(self, captured_signal: int | None = None, stack_frame: FrameType | None = None) -> None:
        """Kill the program; when called as a signal handler, exit with ``128 + signal``."""
        # Never wait for the program here: as a signal handler this may interrupt
        # proc.wait(), which holds the Popen's lock until it returns.
        try:
            self.proc.kill()
        except OSError:
            pass  # already gone
        if captured_signal is not None:
            sys.exit(128 + captured_signal)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class ExternalProgramStep(trun.Step):
    """Template step that runs an external program in a subprocess.

    Override :meth:`program_args`; optionally :meth:`program_environment`,
    :attr:`always_log_stderr` and :meth:`build_tracking_url`. The program is
    started with :class:`subprocess.Popen` and the list from
    :meth:`program_args` (no shell).
    """

    capture_output = trun.BoolParameter(
        default=True, significant=False, positional=False,
        description="Capture the program's stdout and stderr and log them when it ends.")

    stream_for_searching_tracking_url = trun.ChoiceParameter(
        var_type=str, choices=["none", "stdout", "stderr"], default="none", significant=False, positional=False,
        visibility=ParameterVisibility.HIDDEN, description="Stream for searching tracking URL")
    """Which output of the program to scan for :attr:`tracking_url_pattern`: ``stdout``, ``stderr`` or
    ``none`` (the default: no scanning)."""

    tracking_url_pattern = trun.OptionalParameter(
        default=None, significant=False, positional=False, visibility=ParameterVisibility.HIDDEN,
        description="Regex pattern used for searching URL in the logs of the external program")
    """Regular expression searched in each line of the scanned stream, e.g. ``'Job UI is here: (https?://.*)'``.
    The first group of a match (the whole match if the pattern has no group) goes through
    :meth:`build_tracking_url` and becomes the step's tracking URL in the scheduler."""

    def program_args(self) -> Sequence[Any]:
        """The command line: a list whose first element is the executable.

        Elements are converted with ``str()``, so paths and numbers may be used.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement program_args() returning the command line as a list, "
            f"e.g. ['wc', '-l', self.input().path]"
        )

    def program_environment(self) -> dict[str, str]:
        """The environment variables of the program; by default a copy of this process's."""
        return os.environ.copy()

    @property
    def always_log_stderr(self) -> bool:
        """Log the captured stderr even when the program succeeds (override with ``False`` to log it only on failure)."""
        return True

    def build_tracking_url(self, logs_output: str) -> str:
        """Turn the text matched by :attr:`tracking_url_pattern` into the tracking URL; identity by default."""
        return logs_output

    def _clean_output_file(self, file_object: IO[bytes]) -> str:
        file_object.seek(0)
        return _decode(file_object.read())

    def _checked_program_args(self) -> list[str]:
        args = self.program_args()
        if isinstance(args, (str, bytes)):
            text = args if isinstance(args, str) else _decode(args)
            raise TypeError(
                f"{type(self).__name__}.program_args() must return a list of arguments, not the string {text!r}; "
                f"did you mean {shlex.split(text)!r}?"
            )
        args = [str(arg) for arg in args]
        if not args:
            raise ValueError(f"{type(self).__name__}.program_args() returned no arguments; "
                             f"the first element must be the program to run")
        return args

    def _tracking_pattern(self) -> re.Pattern[str] | None:
        if self.stream_for_searching_tracking_url == "none" or self.tracking_url_pattern is None:
            return None
        try:
            return re.compile(self.tracking_url_pattern)
        except re.error as error:
            raise ValueError(
                f"{type(self).__name__}.tracking_url_pattern {self.tracking_url_pattern!r} is not a valid "
                f"regular expression: {error}"
            ) from None

    def run(self) -> None:
        """Run the program; raise :class:`ExternalProgramRunError` if it exits with a non-zero status."""
        args = self._checked_program_args()
        pattern = self._tracking_pattern()
        logger.info("Running command: %s", " ".join(args))
        env = self.program_environment()
        proc_kwargs: dict[str, Any] = {"env": env}
        with ExitStack() as cleanup:
            if self.capture_output:
                tmp_stdout = cleanup.enter_context(tempfile.TemporaryFile())
                tmp_stderr = cleanup.enter_context(tempfile.TemporaryFile())
                proc_kwargs.update(stdout=tmp_stdout, stderr=tmp_stderr)
            if pattern is not None:
                with self._proc_with_tracking_url_context(proc_args=args, proc_kwargs=proc_kwargs) as proc:
                    proc.wait()
            else:
                proc = subprocess.Popen(args, **proc_kwargs)
                with ExternalProgramRunContext(proc):
                    proc.wait()
            success = proc.returncode == 0

            stdout = stderr = None
            if self.capture_output:
                stdout = self._clean_output_file(tmp_stdout)
                stderr = self._clean_output_file(tmp_stderr)
                if stdout:
                    logger.info("Program stdout:\n%s", stdout)
                if stderr and (self.always_log_stderr or not success):
                    logger.info("Program stderr:\n%s", stderr)

            if not success:
                raise ExternalProgramRunError(f"Program failed with return code={proc.returncode}:", args,
                                              env=env, stdout=stdout, stderr=stderr)

    @contextmanager
    def _proc_with_tracking_url_context(self, proc_args: Sequence[str],
                                        proc_kwargs: dict[str, Any]) -> Iterator[subprocess.Popen[bytes]]:
        """Start the program with the scanned stream on a pipe; yield it once that stream has ended.

        Each line read is copied where the stream would otherwise have gone (the
        capture file, or this process's own stream) and searched for
        :attr:`tracking_url_pattern`.
        """
        stream_name = self.stream_for_searching_tracking_url
        pattern = self._tracking_pattern()
        copy_to = proc_kwargs.get(stream_name)
        proc = subprocess.Popen(proc_args, **dict(proc_kwargs, **{stream_name: subprocess.PIPE}))
        pipe = proc.stdout if stream_name == "stdout" else proc.stderr
        assert pipe is not None
        with ExternalProgramRunContext(proc):
            try:
                for line in iter(pipe.readline, b""):
                    self._copy_line(line, copy_to, stream_name)
                    if pattern is not None:
                        self._report_tracking_url(pattern, _decode(line))
                yield proc
            finally:
                pipe.close()

    def _copy_line(self, line: bytes, copy_to: Any, stream_name: str) -> None:
        if copy_to is not None:
            copy_to.write(line)
            return
        own_stream = sys.stdout if stream_name == "stdout" else sys.stderr
        own_stream.write(_decode(line))
        own_stream.flush()

    def _report_tracking_url(self, pattern: re.Pattern[str], line: str) -> None:
        match = pattern.search(line)
        if match is None:
            return
        url = self.build_tracking_url(match.group(1) if pattern.groups else match.group(0))
        if self.set_tracking_url is None:
            logger.info("Tracking URL of %s: %s", self.step_id, url)
            return
        try:
            self.set_tracking_url(url)
        except Exception:  # the program is more important than showing its URL
            logger.warning("Could not report tracking URL %s of %s", url, self.step_id, exc_info=True)


class ExternalPythonProgramStep(ExternalProgramStep):
    """An :class:`ExternalProgramStep` for a Python program, with a virtualenv and extra module path.

    ``program_args()`` usually starts with ``"python"``, which the virtualenv's
    ``bin`` directory (put first on ``PATH``) then provides.
    """

    virtualenv = trun.OptionalParameter(
        default=None, positional=False,
        description="path to the virtualenv directory to use. It should point to the directory containing "
                    "the ``bin/activate`` file used for enabling the virtualenv.")
    extra_pythonpath = trun.OptionalParameter(
        default=None, positional=False,
        description="extend the search path for modules by prepending this value to the ``PYTHONPATH`` "
                    "environment variable.")

    def program_environment(self) -> dict[str, str]:
        """The inherited environment plus ``PYTHONPATH`` and the virtualenv's ``PATH``/``VIRTUAL_ENV``."""
        env = super().program_environment()
        if self.extra_pythonpath:
            existing = env.get("PYTHONPATH")
            # no trailing separator when there was no PYTHONPATH: an empty entry would add the cwd
            env["PYTHONPATH"] = os.pathsep.join([self.extra_pythonpath, existing]) if existing else self.extra_pythonpath
        if self.virtualenv:
            # what the virtualenv's activate script does
            scripts = "Scripts" if os.name == "nt" else "bin"
            existing_path = env.get("PATH")
            venv_bin = os.path.join(self.virtualenv, scripts)
            env["PATH"] = os.pathsep.join([venv_bin, existing_path]) if existing_path else venv_bin
            env["VIRTUAL_ENV"] = self.virtualenv
            env.pop("PYTHONHOME", None)
        return env
