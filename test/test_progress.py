"""Progress reporters: a live status line on a terminal, plain log lines elsewhere."""
from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest

import trun
from trun.progress import LogProgress, ProgressReporter, TerminalProgress, reporter_for

CLEAR = "\r\x1b[K"


def make_steps(n: int):
    class ProgressStep(trun.Step):
        n = trun.IntParameter()

    return [ProgressStep(n=i) for i in range(n)]


class Terminal:
    """A real pseudo-terminal: ``stream`` is the program side, ``read()`` what the screen got."""

    def __init__(self, columns: int = 200) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        attrs = termios.tcgetattr(self.slave)
        attrs[1] &= ~termios.ONLCR  # keep "\n" as written, no "\r\n" translation
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        self.stream = os.fdopen(self.slave, "w", buffering=1, closefd=False)

    def read(self) -> str:
        self.stream.flush()
        chunks = []
        while select.select([self.master], [], [], 0.05)[0]:
            chunks.append(os.read(self.master, 65536))
        return b"".join(chunks).decode()

    def close(self) -> None:
        self.stream.close()
        os.close(self.slave)
        os.close(self.master)


@pytest.fixture
def terminal():
    term = Terminal()
    yield term
    term.close()


@pytest.fixture
def terminal_logger(terminal):
    """A logger whose handler writes to the terminal, removed afterwards."""
    log = logging.getLogger("test-progress-terminal")
    handler = logging.StreamHandler(terminal.stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log, handler
    log.removeHandler(handler)


def test_counts_follow_scheduling_running_and_finishing():
    a, b, c = make_steps(3)
    progress = LogProgress()
    progress.on_scheduled(a, "PENDING", True)
    progress.on_scheduled(b, "PENDING", True)
    progress.on_scheduled(c, "DONE", True)
    progress.on_started(a)
    counts = progress.counts()
    assert (counts.total, counts.done, counts.running, counts.pending, counts.failed) == (3, 1, 1, 1, 0)
    progress.on_finished(a, "FAILED")
    counts = progress.counts()
    assert (counts.done, counts.running, counts.pending, counts.failed) == (1, 0, 1, 1)


def test_not_runnable_pending_steps_count_as_missing_external():
    (a,) = make_steps(1)
    progress = LogProgress()
    progress.on_scheduled(a, "PENDING", False)
    assert progress.counts().missing == 1
    assert progress.counts().describe() == "0/1 steps done, 0 running, 0 pending, 0 failed, 1 missing external"


def test_scheduling_errors_count_as_failed():
    (a,) = make_steps(1)
    progress = LogProgress()
    progress.on_scheduled(a, "UNKNOWN", False)
    assert progress.counts().failed == 1


def test_step_yielding_dynamic_dependencies_goes_back_to_pending():
    (a,) = make_steps(1)
    progress = LogProgress()
    progress.on_scheduled(a, "PENDING", True)
    progress.on_started(a)
    progress.on_finished(a, "PENDING")
    assert (progress.counts().running, progress.counts().pending) == (0, 1)


def test_a_finish_without_a_start_keeps_the_runnable_flag_of_the_last_report():
    a, b = make_steps(2)
    progress = LogProgress()
    progress.on_scheduled(a, "PENDING", False)
    progress.on_finished(a, "PENDING")  # e.g. an external step checked again: still missing
    progress.on_scheduled(b, "PENDING", False)
    progress.on_scheduled(b, "PENDING", True)
    progress.on_finished(b, "PENDING")
    counts = progress.counts()
    assert (counts.total, counts.missing, counts.pending, counts.running) == (2, 1, 1, 0)


def test_log_progress_writes_one_info_line_per_finished_step(caplog):
    a, b = make_steps(2)
    progress = LogProgress()
    with caplog.at_level(logging.INFO, logger="trun-interface"):
        progress.on_scheduled(a, "PENDING", True)
        progress.on_scheduled(b, "PENDING", True)
        progress.on_started(a)
        progress.on_finished(a, "DONE")
    messages = [r.getMessage() for r in caplog.records
                if r.name == "trun-interface" and r.getMessage().startswith("Progress")]
    assert messages == [f"Progress: 1/2 steps done, 0 running, 1 pending, 0 failed ({a} DONE)"]


def test_reporter_for_a_pipe_logs_plain_lines():
    assert isinstance(reporter_for(io.StringIO()), LogProgress)


def test_reporter_for_a_terminal_draws_a_status_line(terminal):
    progress = reporter_for(terminal.stream)
    try:
        assert isinstance(progress, TerminalProgress)
    finally:
        progress.close()


def test_reporter_for_a_dumb_terminal_logs_plain_lines(terminal, monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(reporter_for(terminal.stream), LogProgress)


def test_terminal_status_line_is_redrawn_in_place(terminal):
    a, b = make_steps(2)
    progress = TerminalProgress(terminal.stream)
    progress.on_scheduled(a, "PENDING", True)
    progress.on_scheduled(b, "PENDING", True)
    progress.on_started(a)
    progress.on_finished(a, "DONE")
    screen = terminal.read()
    progress.close()
    assert "\n" not in screen
    assert screen.endswith(CLEAR + "trun: 1/2 steps done, 0 running, 1 pending, 0 failed")
    assert screen.count(CLEAR) == 4


def test_terminal_status_line_names_the_running_step(terminal):
    a, b = make_steps(2)
    progress = TerminalProgress(terminal.stream)
    progress.on_scheduled(a, "PENDING", True)
    progress.on_scheduled(b, "PENDING", True)
    progress.on_started(a)
    progress.on_started(b)
    progress.close()
    assert progress.status_line() == f"trun: 0/2 steps done, 2 running, 0 pending, 0 failed | running {b} (+1 more)"


def test_terminal_status_line_is_cut_to_the_terminal_width():
    term = Terminal(columns=40)
    try:
        (a,) = make_steps(1)
        progress = TerminalProgress(term.stream)
        progress.on_scheduled(a, "PENDING", True)
        progress.close()
        drawn = term.read().split(CLEAR)[1]
        assert drawn == "trun: 0/1 steps done, 0 running, 1 pend"
    finally:
        term.close()


def test_close_wipes_the_status_line(terminal):
    (a,) = make_steps(1)
    progress = TerminalProgress(terminal.stream)
    progress.on_scheduled(a, "PENDING", True)
    progress.close()
    assert terminal.read().endswith(CLEAR)


def test_log_lines_go_above_the_status_line_which_is_drawn_again(terminal, terminal_logger):
    log, _handler = terminal_logger
    (a,) = make_steps(1)
    progress = TerminalProgress(terminal.stream)
    progress.on_scheduled(a, "PENDING", True)
    terminal.read()
    log.info("a log line")
    screen = terminal.read()
    progress.close()
    assert screen == CLEAR + "INFO: a log line\n" + CLEAR + "trun: 0/1 steps done, 0 running, 1 pending, 0 failed"


def test_close_gives_logging_handlers_their_own_emit_back(terminal, terminal_logger):
    log, handler = terminal_logger
    progress = TerminalProgress(terminal.stream)
    assert "emit" in handler.__dict__
    progress.close()
    assert "emit" not in handler.__dict__
    log.info("plain again")
    assert terminal.read() == "INFO: plain again\n"


# -- the trun command, end to end ----------------------------------------------

STEPS_MODULE = textwrap.dedent("""
    import trun

    class Leaf(trun.Step):
        n = trun.IntParameter()
        def output(self):
            return trun.LocalTarget(f"out/leaf-{self.n}.txt")
        def run(self):
            with self.output().open("w") as f:
                f.write("x")

    class Root(trun.WrapperStep):
        def requires(self):
            return [Leaf(n=i) for i in range(3)]
""")


def write_module(tmp_path):
    (tmp_path / "progress_steps.py").write_text(STEPS_MODULE)


def trun_command(*args):
    return [sys.executable, "-m", "trun", "--module", "progress_steps", "Root", "--local-scheduler",
            "--no-lock", *args]


def run_on_terminal(tmp_path, args, timeout=60) -> tuple[int, str]:
    """Run the trun command with stdout and stderr on a real pseudo-terminal."""
    term = Terminal()
    env = dict(os.environ, PYTHONPATH=str(tmp_path), TERM="xterm")
    try:
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                stdout=term.slave, stderr=term.slave)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = select.select([term.master], [], [], 0.1)[0]
            if ready:
                chunks.append(os.read(term.master, 65536))
            elif proc.poll() is not None:
                break
        proc.wait(timeout=5)
        return proc.returncode, b"".join(chunks).decode()
    finally:
        term.close()


def test_trun_on_a_terminal_shows_a_live_status_line_then_the_summary(tmp_path):
    write_module(tmp_path)
    code, screen = run_on_terminal(tmp_path, trun_command())
    assert code == 0, screen
    assert CLEAR + "trun: 4/4 steps done, 0 running, 0 pending, 0 failed" in screen
    assert "| running Leaf(n=" in screen
    summary_at = screen.index("===== Trun Execution Summary =====")
    assert screen.rindex(CLEAR) < summary_at  # the summary replaces the status line


def test_trun_without_a_terminal_logs_plain_progress_lines(tmp_path):
    write_module(tmp_path)
    out = subprocess.run(trun_command(), cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "\x1b[K" not in out.stderr
    assert "INFO: Progress: 4/4 steps done, 0 running, 0 pending, 0 failed (Root() DONE)" in out.stderr


def test_no_progress_turns_progress_off(tmp_path):
    write_module(tmp_path)
    code, screen = run_on_terminal(tmp_path, trun_command("--no-progress"))
    assert code == 0, screen
    assert "\x1b[K" not in screen
    assert "Progress:" not in screen
    assert "===== Trun Execution Summary =====" in screen


def test_counts_follow_each_step_through_its_transitions_without_recounting():
    from trun.progress import ProgressCounts, ProgressReporter

    reporter = ProgressReporter()
    reporter.on_scheduled("a", "PENDING", True)
    reporter.on_scheduled("b", "PENDING", False)  # external, missing
    reporter.on_scheduled("c", "DONE", True)
    reporter.on_started("a")
    assert reporter.counts() == ProgressCounts(total=3, done=1, running=1, pending=0, failed=0, missing=1)
    reporter.on_finished("a", "FAILED")
    reporter.on_scheduled("a", "PENDING", True)  # retried
    reporter.on_started("a")
    reporter.on_finished("a", "DONE")
    assert reporter.counts() == ProgressCounts(total=3, done=2, running=0, pending=0, failed=0, missing=1)


# -- the backlog: events wait until the counters are read -----------------------------
# (on the base reporter, which reads its counters only when asked, whatever the log level)


def _events(seed: int, n: int = 300):
    """A random but plausible stream of reporter events over a few steps."""
    import random

    rng = random.Random(seed)
    keys = [f"S{i}" for i in range(8)]
    statuses = ["PENDING", "DONE", "FAILED", "UNKNOWN", "DISABLED", "RUNNING"]
    for _ in range(n):
        key = rng.choice(keys)
        kind = rng.choice(("scheduled", "started", "finished"))
        if kind == "scheduled":
            yield kind, (key, rng.choice(statuses), rng.random() < 0.7)
        elif kind == "started":
            yield kind, (key,)
        else:
            yield kind, (key, rng.choice(statuses))


def _snapshot(reporter):
    return reporter.counts(), reporter.running_steps()


class ReferenceCounts:
    """The counting rules written plainly, applied as each event arrives."""

    def __init__(self) -> None:
        self.category: dict[str, str] = {}
        self.runnable: dict[str, bool] = {}
        self.running: dict[str, str] = {}

    def on_scheduled(self, key, status, runnable):
        self._set(key, status, runnable)
        self.running.pop(key, None)

    def on_started(self, key):
        self.category[key] = "running"
        self.runnable[key] = True
        self.running[key] = key

    def on_finished(self, key, status):
        self._set(key, status, self.runnable.get(key, True))
        self.running.pop(key, None)

    def _set(self, key, status, runnable):
        if status == "DONE":
            category = "done"
        elif status in ("RUNNING", "BATCH_RUNNING"):
            category = "running"
        elif status in ("FAILED", "UNKNOWN"):
            category = "failed"
        elif status == "DISABLED":
            category = "disabled"
        else:
            category = "pending" if runnable else "missing"
        self.category[key] = category
        self.runnable[key] = runnable

    def snapshot(self):
        from trun.progress import ProgressCounts

        values = list(self.category.values())
        return ProgressCounts(len(values), *(values.count(c) for c in
                                             ("done", "running", "pending", "failed", "missing", "disabled"))), \
            list(self.running.values())


@pytest.mark.parametrize("seed", range(5))
def test_counters_read_late_equal_counters_read_after_every_event(seed):
    reference = ReferenceCounts()
    eager = ProgressReporter()  # read after every event: its backlog never holds more than one
    lazy = ProgressReporter()  # read now and then: events wait in its backlog meanwhile
    for i, (kind, args) in enumerate(_events(seed)):
        for reporter in (reference, eager, lazy):
            getattr(reporter, f"on_{kind}")(*args)
        assert _snapshot(eager) == reference.snapshot()
        if i % 17 == 0:
            assert _snapshot(lazy) == reference.snapshot()
    assert _snapshot(lazy) == reference.snapshot()


@pytest.mark.parametrize("seed", range(3))
def test_a_backlog_nobody_reads_is_applied_as_it_fills(seed, monkeypatch):
    import trun.progress as progress

    monkeypatch.setattr(progress, "_BACKLOG_LIMIT", 3)
    eager = ProgressReporter()
    unread = ProgressReporter()
    for kind, args in _events(seed):
        getattr(eager, f"on_{kind}")(*args)
        getattr(unread, f"on_{kind}")(*args)
        eager.counts()
        assert len(unread._backlog) < 3
    assert _snapshot(unread) == _snapshot(eager)


def test_an_event_arriving_while_the_backlog_is_applied_is_kept():
    a, b = make_steps(2)
    progress = ProgressReporter()

    class ReportsWhenRead:
        """A status whose str() (asked while the backlog is applied) brings in another event."""

        def __str__(self) -> str:
            progress.on_scheduled(b, "DONE", True)
            return "PENDING"

    progress.on_scheduled(a, ReportsWhenRead(), True)
    assert progress.counts().total == 1  # b came in during that read: it waits for the next one
    counts = progress.counts()
    assert (counts.total, counts.pending, counts.done) == (2, 1, 1)


def test_an_event_whose_status_cannot_be_read_is_dropped_once():
    a, b = make_steps(2)
    progress = ProgressReporter()

    class Unreadable:
        def __str__(self) -> str:
            raise ValueError("no status")

    progress.on_scheduled(a, "PENDING", True)
    progress.on_scheduled(b, Unreadable(), True)
    progress.on_finished(a, "DONE")
    with pytest.raises(ValueError, match="no status"):
        progress.counts()
    counts = progress.counts()  # b's report is gone; a's finish, after it, still counts
    assert (counts.total, counts.done) == (1, 1)


def test_log_progress_below_info_applies_events_only_when_read(caplog):
    (a,) = make_steps(1)
    progress = LogProgress()
    with caplog.at_level(logging.WARNING, logger="trun-interface"):
        progress.on_scheduled(a, "PENDING", True)
        progress.on_started(a)
        progress.on_finished(a, "DONE")
        assert len(progress._backlog) == 3  # nothing shown, nothing applied yet
    assert (progress.counts().total, progress.counts().done) == (1, 1)
    assert progress._backlog == []
