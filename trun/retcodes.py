"""Exit codes of the ``trun`` command, and the function that runs a command line and exits.

The exit code is the **largest** configured code among the outcomes that
happened (``[retcode]`` section, or ``--retcode-<name>`` flags):

* ``unhandled_exception`` (default 4): trun itself raised; logged as
  "Uncaught exception in trun" with the traceback;
* ``missing_data`` (0): external data was missing;
* ``step_failed`` (30): a step failed;
* ``already_running`` (0): an identical command holds the pid lock, or a step
  was being run by another worker;
* ``scheduling_error`` (35): ``complete()`` or ``requires()`` raised, or the
  step limit was reached;
* ``not_run`` (0): a step was not granted run permission by the scheduler, or
  the root step did not complete for any other reason.

Trun's defaults differ from Luigi's (where ``task_failed`` and
``scheduling_error`` are 0) so that a crontab line can alert on failures, while
missing data, "already running" and "not run" stay 0 for the every-minute cron
pattern. A mistake on the command line (unknown step or flag, bad or missing
value, unimportable ``--module``) is not an outcome: it prints the usage and one
``trun: error: …`` line to stderr and exits 2.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from trun import parameter
from trun.step import Config

__all__ = ["retcode", "run_with_retcodes", "USAGE_EXIT_CODE"]

logger = logging.getLogger("trun-interface")

#: Exit code of a command-line mistake (argparse's convention).
USAGE_EXIT_CODE = 2

_GENERIC_USAGE = ("usage: trun [--module MODULE] STEP_FAMILY [--PARAM VALUE ...] [--Family-param VALUE ...]\n"
                  "            [--local-scheduler] [--workers N] [--scheduler-host HOST] [--scheduler-port PORT]\n"
                  "            [--no-lock] [--log-level LEVEL] [--no-progress] [--help] [--help-all]")


class retcode(Config):
    """``[retcode]``: the exit code for each outcome of a run; the largest applicable one wins."""

    unhandled_exception = parameter.IntParameter(
        default=4, description="For internal trun errors.")
    missing_data = parameter.IntParameter(
        default=0, description="For when there are incomplete ExternalStep dependencies.")
    step_failed = parameter.IntParameter(
        default=30, description="For when a step's run() method fails.")
    already_running = parameter.IntParameter(
        default=0, description="For both local --lock and trund \"lock\"")
    scheduling_error = parameter.IntParameter(
        default=35, description="For when a step's complete() or requires() fails, "
                                "or step-limit reached")
    not_run = parameter.IntParameter(
        default=0, description="For when a step is not granted run permission by the scheduler.")


def run_with_retcodes(argv: Sequence[str]) -> NoReturn:
    """Run the workflow on command line ``argv`` (without the program name) and exit with its code."""
    from trun import interface
    from trun.cmdline_parser import CmdlineParser
    from trun.execution_summary import _root_step, _summary_dict

    argv = list(argv)
    interface._register_builtin_steps()
    with contextlib.ExitStack() as stack:
        try:
            cmdline = stack.enter_context(CmdlineParser.global_instance(argv))
            retcodes = retcode()
            interface.core()  # bad values of --workers, --log-level, … are command-line mistakes too
            root_step = cmdline.get_step_obj()
        except SystemExit as exc:
            # CommandLineError (a SystemExit carrying its message and usage), or
            # any other SystemExit("message"); --help's SystemExit(0) goes through.
            if isinstance(exc.code, str):
                _exit_with_usage(exc.code, exc)
            raise
        except Exception as exc:
            if _is_user_mistake(exc):
                _exit_with_usage(str(exc), exc)
            _exit_uncaught(_fallback_unhandled_code())

        try:
            result = interface._schedule_and_run([root_step])
        except interface.PidLockAlreadyTakenExit:
            sys.exit(retcodes.already_running)
        except Exception as exc:
            if _is_user_mistake(exc):  # e.g. a bad value of a [worker] class flag
                _exit_with_usage(str(exc), exc)
            _exit_uncaught(retcodes.unhandled_exception)

        worker = result.worker
        step_sets = _summary_dict(worker)
        root = _root_step(worker) if worker._add_step_history else None

    outcome_codes = (
        (retcodes.missing_data, step_sets["still_pending_ext"]),
        (retcodes.step_failed, step_sets["failed"]),
        (retcodes.already_running, step_sets["run_by_other_worker"]),
        (retcodes.scheduling_error, step_sets["scheduling_error"]),
        (retcodes.not_run, step_sets["not_run"]),
    )
    code = max(code if steps else 0 for code, steps in outcome_codes)
    if code == 0 and root not in step_sets["completed"] and root not in step_sets["already_done"]:
        sys.exit(retcodes.not_run)
    sys.exit(code)


def _is_user_mistake(exc: BaseException) -> bool:
    """A wrong step name, parameter or setting, as opposed to a bug (which keeps its traceback)."""
    from trun.setup_logging import LoggingConfigFileNotFound
    from trun.step_register import StepClassException

    return isinstance(exc, (parameter.ParameterException, StepClassException, LoggingConfigFileNotFound))


def _one_line(message: str) -> str:
    """Fold a multi-line message into one line; runs of one-word lines (candidate lists) become "a, b"."""
    parts: list[str] = []
    words: list[str] = []
    for line in (message or "invalid command line").splitlines():
        line = line.strip()
        if not line:
            continue
        if " " in line:
            if words:
                parts.append(", ".join(words) + ".")
                words = []
            parts.append(line)
        else:
            words.append(line)
    if words:
        parts.append(", ".join(words))
    return " ".join(parts)


def _exit_with_usage(message: str, exc: BaseException) -> NoReturn:
    usage = getattr(exc, "usage", None)
    if not isinstance(usage, str) or not usage.strip():
        usage = _GENERIC_USAGE
    usage = usage.rstrip("\n")
    if not usage.lstrip().startswith("usage:"):
        usage = "usage: " + usage.lstrip()
    sys.stderr.write(f"{usage}\ntrun: error: {_one_line(message)}\n")
    sys.stderr.flush()
    sys.exit(USAGE_EXIT_CODE)


def _exit_uncaught(code: int) -> NoReturn:
    # The failure may have come before logging was set up; set it up now so
    # the traceback is not lost.
    from trun.interface import core
    from trun.setup_logging import InterfaceLogging
    try:
        opts: Any = core()
    except Exception:
        opts = None
    with contextlib.suppress(Exception):
        InterfaceLogging.setup(opts)
    logger.exception("Uncaught exception in trun")
    sys.exit(code)


def _fallback_unhandled_code() -> int:
    try:
        return int(retcode().unhandled_exception)
    except Exception:
        return 4

