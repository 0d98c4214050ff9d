"""Steps for the end-to-end tests, importable by name (``trun --module e2e_steps ...``).

Worker subprocesses and ``--workers 2`` children import this module, so every
step lives at module level and keeps all of its state in files under the
``out_dir`` parameter: outputs ``<out_dir>/<step_id>.done`` and one shared run
log ``<out_dir>/runs.log``. Each ``run()`` appends ``<step_id> <pid> <worker>
start <time>`` when it begins and ``... end <time>`` when it finishes (``<worker>``
is ``$E2E_WORKER`` of the worker process, inherited by its step processes),
each line with a single ``O_APPEND`` write, so lines from concurrent processes
never interleave. :func:`read_runs` turns the log back into records that the
tests count ("ran exactly once") and compare ("no two runs overlapped").
:func:`start_worker` starts a real ``python -m trun`` worker on these steps.

Hazards: a step id is used as a file name; trun's step ids contain only word
characters, dashes and dots, so that is safe. ``E2E_STEP_HANG`` (seconds) in
the environment makes every :class:`Leaf` of that process sleep that long
before finishing: it gives a test a worker that is reliably in the middle of a
step when it is killed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trun

RUN_LOG_NAME = "runs.log"
HANG_ENV = "E2E_STEP_HANG"
WORKER_ENV = "E2E_WORKER"
TEST_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RunEvent:
    """One line of the run log."""

    step_id: str
    pid: int
    worker: str  # the $E2E_WORKER label of the worker that ran the step
    event: str  # "start" or "end"
    at: float


def record(out_dir: str, step_id: str, event: str) -> None:
    """Append one ``<step_id> <pid> <worker> <event> <time>`` line to the run log of ``out_dir``."""
    worker = os.environ.get(WORKER_ENV) or "-"
    line = f"{step_id} {os.getpid()} {worker} {event} {time.time():.6f}\n".encode()
    fd = os.open(os.path.join(out_dir, RUN_LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of a short line: atomic with O_APPEND
    finally:
        os.close(fd)


def read_runs(out_dir: str | Path) -> list[RunEvent]:
    """Every line of the run log of ``out_dir`` (empty when no step ran)."""
    path = Path(out_dir) / RUN_LOG_NAME
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        step_id, pid, worker, event, at = line.split()
        events.append(RunEvent(step_id, int(pid), worker, event, float(at)))
    return events


@dataclass(frozen=True)
class Run:
    """One attempt at a step: who ran it and when; ``end`` is None if it never finished."""

    pid: int
    worker: str
    start: float
    end: float | None


def runs_by_step(events: Iterable[RunEvent]) -> dict[str, list[Run]]:
    """Pair start and end lines (per step and pid) into runs, in order of start."""
    open_runs: dict[tuple[str, int], list[float]] = defaultdict(list)
    workers: dict[tuple[str, int], str] = {}
    runs: dict[str, list[Run]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e.at):
        if e.event == "start":
            open_runs[e.step_id, e.pid].append(e.at)
            workers[e.step_id, e.pid] = e.worker
        else:
            runs[e.step_id].append(Run(e.pid, e.worker, open_runs[e.step_id, e.pid].pop(0), e.at))
    for (step_id, pid), starts in open_runs.items():
        runs[step_id].extend(Run(pid, workers[step_id, pid], at, None) for at in starts)
    return {step_id: sorted(rs, key=lambda r: r.start) for step_id, rs in runs.items()}


def overlapping_runs(runs: dict[str, list[Run]]) -> dict[str, list[Run]]:
    """The steps that had two runs at the same moment (an unfinished run lasts forever)."""
    clashes = {}
    for step_id, rs in runs.items():
        for earlier, later in zip(rs, rs[1:]):
            if earlier.end is None or earlier.end > later.start:
                clashes[step_id] = rs
                break
    return clashes


def start_worker(step_args: Sequence[str], scheduler_url: str, log_path: Path,
                 extra_env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m trun --module e2e_steps <step_args>`` against ``scheduler_url``.

    Output goes to ``log_path``, whose stem labels the worker's lines in the
    run log. ``--no-lock``: workers started on purpose with the same command
    line must not stop each other through the pid lock.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TEST_DIR), env.get("PYTHONPATH", "")) if p)
    env[WORKER_ENV] = log_path.stem
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "trun", "--module", "e2e_steps", *step_args,
           "--scheduler-url", scheduler_url, "--no-lock", "--log-level", "INFO"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_path.parent)


def wait_for_exit(proc: subprocess.Popen, log_path: Path, timeout: float) -> int:
    """The exit code of ``proc``; fails the test, showing the end of its log, if it runs too long."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"worker {proc.pid} still running after {timeout} s; its log ends with:\n"
                             + log_path.read_text()[-3000:]) from None


class Recorded(trun.Step):
    """Base of the steps here: one output file per step, a start and an end line per run."""

    out_dir = trun.Parameter()

    def output(self) -> trun.LocalTarget:
        return trun.LocalTarget(os.path.join(self.out_dir, f"{self.step_id}.done"))

    def run(self) -> Any:
        record(self.out_dir, self.step_id, "start")
        result = self.work()
        with self.output().open("w") as out:
            out.write(str(os.getpid()))
        record(self.out_dir, self.step_id, "end")
        return result

    def work(self) -> Any:
        """What the step does between its start and end lines (nothing by default)."""
        return None


class Leaf(Recorded):
    """Sleeps ``sleep`` seconds (or ``$E2E_STEP_HANG`` when set): a unit of work that takes time."""

    n = trun.IntParameter()
    sleep = trun.FloatParameter(default=0.0)

    def work(self) -> None:
        time.sleep(float(os.environ.get(HANG_ENV) or self.sleep))


class FanIn(Recorded):
    """Needs ``width`` independent leaves: the graph several workers race on."""

    width = trun.IntParameter(default=30)
    sleep = trun.FloatParameter(default=0.0)

    def requires(self) -> list[Leaf]:
        return [Leaf(out_dir=self.out_dir, n=i, sleep=self.sleep) for i in range(self.width)]


class ChainLink(Recorded):
    """Link ``n`` of a chain: needs link ``n - 1``."""

    n = trun.IntParameter()

    def requires(self) -> list[ChainLink]:
        return [ChainLink(out_dir=self.out_dir, n=self.n - 1)] if self.n > 0 else []


class Failing(Recorded):
    """Always raises in ``run()``."""

    def work(self) -> None:
        raise RuntimeError("Failing fails on purpose")


class NeedsFailing(Recorded):
    """Cannot run: its dependency fails."""

    def requires(self) -> Failing:
        return Failing(out_dir=self.out_dir)


class MissingData(trun.ExternalStep):
    """Data that nobody produces."""

    out_dir = trun.Parameter()

    def output(self) -> trun.LocalTarget:
        return trun.LocalTarget(os.path.join(self.out_dir, "never-written.csv"))


class NeedsMissingData(Recorded):
    """Cannot run: its external input is missing."""

    def requires(self) -> MissingData:
        return MissingData(out_dir=self.out_dir)


class DynamicParent(Recorded):
    """Discovers two leaves while running (dynamic dependencies)."""

    def work(self) -> Any:
        found = yield [Leaf(out_dir=self.out_dir, n=100), Leaf(out_dir=self.out_dir, n=101)]
        if not all(target.exists() for target in found):
            raise RuntimeError("dynamic dependencies were not complete when run() resumed")

    def run(self) -> Any:
        # A generator run(): the worker runs the yielded steps, then resumes it.
        record(self.out_dir, self.step_id, "start")
        yield from self.work()
        with self.output().open("w") as out:
            out.write(str(os.getpid()))
        record(self.out_dir, self.step_id, "end")


class FailsOnce(Recorded):
    """Fails on its first attempt, succeeds on the next (a retry must happen)."""

    def work(self) -> None:
        marker = os.path.join(self.out_dir, f"{self.step_id}.attempted")
        if not os.path.exists(marker):
            Path(marker).touch()
            raise RuntimeError("FailsOnce fails on its first attempt")
