"""Programmatic entry points: ``trun.build`` and ``trun.run``, and the ``[core]`` settings.

``build(steps, local_scheduler=True)`` schedules and runs steps from Python;
``run(argv)`` does the same from a command line given as a list (the ``trun``
command uses it through ``trun.retcodes.run_with_retcodes``). Both end in
``_schedule_and_run``, which:

1. reads ``[core]`` (``core``) — for ``build`` its keyword arguments override it;
2. sets up logging once per process (``trun.setup_logging.InterfaceLogging``);
3. takes the pid lock unless ``no_lock`` (``build`` defaults ``no_lock=True``),
   raising ``PidLockAlreadyTakenExit`` when an identical command is running;
4. connects to ``trund`` (``scheduler_url``, else ``http://<scheduler_host>:<scheduler_port>/``)
   or creates an in-process scheduler with ``local_scheduler``;
5. adds every step to a worker, runs it, and logs the execution summary.

Hazards: logging is configured only by the first call in a process; ``run``
takes the pid lock keyed on the whole process command line (two ``run`` calls
in one process do not block each other, but two processes with the same
command line do).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from trun import lock, parameter
from trun.execution_summary import TrunRunResult
from trun.setup_logging import InterfaceLogging
from trun.step import Config

__all__ = ["core", "build", "run", "PidLockAlreadyTakenExit"]

logger = logging.getLogger("trun-interface")


class core(Config):
    """``[core]`` settings; each is also a bare command-line flag (``--local-scheduler``, ``--workers``…)."""

    use_cmdline_section = False
    ignore_unconsumed = {"autoload_range", "no_configure_logging", "rpc_connect_timeout",
                         "rpc_retry_attempts", "rpc_retry_wait", "rpc_log_retries"}

    local_scheduler = parameter.BoolParameter(
        default=False, description="Use an in-memory central scheduler. Useful for testing.",
        always_in_help=True)
    scheduler_host = parameter.Parameter(
        default="localhost", description="Hostname of machine running remote scheduler",
        config_path=dict(section="core", name="default-scheduler-host"))
    scheduler_port = parameter.IntParameter(
        default=8082, description="Port of remote scheduler api process",
        config_path=dict(section="core", name="default-scheduler-port"))
    scheduler_url = parameter.Parameter(
        default="", description="Full path to remote scheduler",
        config_path=dict(section="core", name="default-scheduler-url"))
    lock_size = parameter.IntParameter(
        default=1, description="Maximum number of workers running the same command")
    no_lock = parameter.BoolParameter(
        default=False, description="Ignore if similar process is already running")
    # Not "<tmp>/trun" as Luigi's "<tmp>/luigi": a directory named like the package in
    # the temp dir shadows an editable install for anyone running Python from there.
    lock_pid_dir = parameter.Parameter(
        default=os.path.join(tempfile.gettempdir(), "trun-locks"),
        description="Directory to store the pid file")
    take_lock = parameter.BoolParameter(
        default=False, description="Signal other processes to stop getting work if already running")
    workers = parameter.IntParameter(
        default=1, description="Maximum number of parallel steps to run")
    logging_conf_file = parameter.Parameter(
        default="", description="Configuration file for logging")
    log_level = parameter.ChoiceParameter(
        default="DEBUG", choices=["NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        description="Default log level to use when logging_conf_file is not set")
    module = parameter.Parameter(
        default="", description="Used for dynamic loading of modules", always_in_help=True)
    parallel_scheduling = parameter.BoolParameter(
        default=False, description="Use multiprocessing to do scheduling in parallel.")
    parallel_scheduling_processes = parameter.IntParameter(
        default=0, description="The number of processes to use for scheduling in parallel. "
                               "By default the number of available CPUs will be used")
    assistant = parameter.BoolParameter(
        default=False, description="Run any step from the scheduler.")
    help = parameter.BoolParameter(
        default=False, description="Show most common flags and all step-specific flags",
        always_in_help=True)
    help_all = parameter.BoolParameter(
        default=False, description="Show all command line flags", always_in_help=True)
    no_progress = parameter.BoolParameter(
        default=False, description="Do not show progress (the live status line on a terminal, "
                                   "the per-step progress log lines otherwise)")


class PidLockAlreadyTakenExit(SystemExit):
    """An identical command already holds the pid lock (``[core] lock_size`` reached)."""


class _WorkerSchedulerFactory:
    """Creates the scheduler and worker for a run; pass your own to ``build``/``run`` to customise."""

    def create_local_scheduler(self) -> Any:
        """An in-process scheduler that prunes as it goes and records no history (nor changes to journal)."""
        from trun import scheduler
        return scheduler.Scheduler(prune_on_get_work=True, record_step_history=False, record_changes=False)

    def create_remote_scheduler(self, url: str) -> Any:
        """A client for the ``trund`` at ``url``."""
        from trun import rpc
        return rpc.RemoteScheduler(url)

    def create_worker(self, scheduler: Any, worker_processes: int, assistant: bool = False) -> Any:
        """A worker on ``scheduler`` running up to ``worker_processes`` steps at once."""
        from trun import worker
        return worker.Worker(scheduler=scheduler, worker_processes=worker_processes, assistant=assistant)


def _schedule_and_run(steps: Iterable[Any], worker_scheduler_factory: Any = None,
                      override_defaults: dict[str, Any] | None = None) -> TrunRunResult:
    """Schedule ``steps`` on one worker, run it and return the ``TrunRunResult``."""
    if worker_scheduler_factory is None:
        worker_scheduler_factory = _WorkerSchedulerFactory()
    env_params = core(**(override_defaults or {}))

    InterfaceLogging.setup(env_params)

    kill_signal = signal.SIGUSR1 if env_params.take_lock and hasattr(signal, "SIGUSR1") else None
    if not env_params.no_lock and not lock.acquire_for(env_params.lock_pid_dir, env_params.lock_size,
                                                       kill_signal):
        raise PidLockAlreadyTakenExit()

    if env_params.local_scheduler:
        sch = worker_scheduler_factory.create_local_scheduler()
    else:
        url = env_params.scheduler_url or f"http://{env_params.scheduler_host}:{env_params.scheduler_port:d}/"
        sch = worker_scheduler_factory.create_remote_scheduler(url=url)

    worker = worker_scheduler_factory.create_worker(
        scheduler=sch, worker_processes=env_params.workers, assistant=env_params.assistant)

    reporter = _attach_progress(worker, env_params)
    success = True
    try:
        with worker:
            add_all = getattr(worker, "add_all", None)
            if add_all is not None:
                success &= bool(add_all(steps, env_params.parallel_scheduling,
                                        env_params.parallel_scheduling_processes))
            else:  # a worker from a custom factory that only has Luigi's add()
                for step in steps:
                    success &= bool(worker.add(step, env_params.parallel_scheduling,
                                               env_params.parallel_scheduling_processes))
            logger.info("Done scheduling steps")
            success &= bool(worker.run())
    finally:
        if reporter is not None:
            reporter.close()  # the summary replaces the live status line
    result = TrunRunResult(worker, success)
    if logger.isEnabledFor(logging.INFO):  # the text means str() of every step: only when it is shown
        logger.info(result.summary_text)
    if hasattr(sch, "close"):
        sch.close()
    return result


def _attach_progress(worker: Any, env_params: core) -> Any:
    reporters = getattr(worker, "reporters", None)
    if env_params.no_progress or reporters is None:
        return None
    from trun.progress import reporter_for
    reporter = reporter_for(sys.stderr)
    if not reporter.shows_anything():
        # Log lines no one will see: their bookkeeping costs ~8% of a run of trivial steps.
        return None
    reporters.append(reporter)
    return reporter


def _register_builtin_steps() -> None:
    """Import the modules whose steps and ``Config`` sections the command line must know.

    Their parameters become flags (``--worker-keep-alive``, ``--email-force-send``) and
    their steps become runnable by name (``RangeDaily``, ``TestNotificationsStep``).
    Done here rather than at ``import trun`` to keep that import fast.
    """
    import trun.notifications  # noqa: F401
    import trun.worker  # noqa: F401

    _autoload_range()


def _autoload_range() -> None:
    """Register ``RangeDaily`` & co. for the command line, unless ``[core] autoload_range`` is false.

    With it false, a command line names them after ``--module trun.tools.range``, as in Luigi.
    """
    from trun.configuration import get_config

    try:
        autoload = get_config().getboolean("core", "autoload_range", True)
    except ValueError:
        autoload = True  # a malformed value is reported where [core] is read for the run
    if autoload:
        import trun.tools.range  # noqa: F401 - registers the range steps


def _run(cmdline_args: Sequence[str] | None = None, main_step_cls: Any = None,
         worker_scheduler_factory: Any = None, use_dynamic_argparse: Any = None,
         local_scheduler: bool = False, detailed_summary: bool = False) -> TrunRunResult:
    from trun.cmdline_parser import CmdlineParser

    _register_builtin_steps()
    if use_dynamic_argparse is not None:
        warnings.warn("use_dynamic_argparse is deprecated, don't set it.", DeprecationWarning, stacklevel=3)
    if cmdline_args is None:
        cmdline_args = sys.argv[1:]
    elif not isinstance(cmdline_args, (list, tuple)):
        raise TypeError(f"cmdline_args must be a list or tuple of strings such as "
                        f"['MyStep', '--local-scheduler'], not {type(cmdline_args).__name__}")
    args = list(cmdline_args)  # never mutate the caller's list
    if main_step_cls is not None:
        args.insert(0, main_step_cls.get_step_family())
    if local_scheduler:
        args.append("--local-scheduler")
    with CmdlineParser.global_instance(args) as cp:
        return _schedule_and_run([cp.get_step_obj()], worker_scheduler_factory)


def run(cmdline_args: Sequence[str] | None = None, main_step_cls: Any = None,
        worker_scheduler_factory: Any = None, use_dynamic_argparse: Any = None,
        local_scheduler: bool = False, detailed_summary: bool = False) -> bool | TrunRunResult:
    """Run a workflow described by a command line given as a list, as the ``trun`` command would.

    ``cmdline_args`` defaults to ``sys.argv[1:]``, e.g. ``["MyStep", "--x", "1"]``;
    ``main_step_cls`` puts that step's family first; ``local_scheduler=True``
    appends ``--local-scheduler``. The pid lock applies (``--no-lock`` to skip).
    Returns whether scheduling and running succeeded, or the ``TrunRunResult``
    when ``detailed_summary`` is true. Prefer the ``trun`` command or ``build``.
    """
    result = _run(cmdline_args, main_step_cls, worker_scheduler_factory, use_dynamic_argparse,
                  local_scheduler, detailed_summary)
    return result if detailed_summary else result.scheduling_succeeded


def build(steps: Iterable[Any], worker_scheduler_factory: Any = None, detailed_summary: bool = False,
          **env_params: Any) -> bool | TrunRunResult:
    """Schedule and run ``steps`` from Python, without parsing a command line.

    ``env_params`` are ``[core]`` settings, e.g. ``local_scheduler=True``,
    ``workers=4``, ``scheduler_host="trund.example.com"``, ``log_level="INFO"``.
    Unlike the ``trun`` command, ``no_lock`` defaults to True.

    Returns True when every step was scheduled and ran successfully (False if
    scheduling failed or a step failed), or the full ``TrunRunResult``
    (``status``, ``summary_text``, …) when ``detailed_summary`` is true.

    >>> trun.build([MyStep(date=datetime.date(2026, 1, 1))], local_scheduler=True)  # doctest: +SKIP
    True
    """
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
        raise TypeError(f"build() takes a list of steps, e.g. trun.build([MyStep()]), "
                        f"not {type(steps).__name__}")
    env_params.setdefault("no_lock", True)
    result = _schedule_and_run(list(steps), worker_scheduler_factory, override_defaults=env_params)
    return result if detailed_summary else result.scheduling_succeeded
