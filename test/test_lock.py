"""The pid-file lock (``trun.lock``), exercised with real processes."""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import trun.lock

# A lock holder: waits for a "go" file, tries the lock, reports, then holds
# it (stays alive) until a "release" file appears. Every copy started with the
# same arguments has the same command line, hence the same lock.
HOLDER = textwrap.dedent("""
    import os, signal, sys, time
    from trun.lock import acquire_for
    pid_dir, size, go, release, take = sys.argv[1:6]
    signal.signal(signal.SIGUSR1,
                  lambda *_: open(release + ".signalled." + str(os.getpid()), "w").close())
    while not os.path.exists(go):
        time.sleep(0.01)
    ok = acquire_for(pid_dir, int(size), signal.SIGUSR1 if take == "take" else None)
    print("ACQUIRED" if ok else "REFUSED", flush=True)
    while ok and not os.path.exists(release):
        time.sleep(0.01)
""")


class Holders:
    """Starts lock-holder processes that share one command line."""

    def __init__(self, tmp_path: Path, size: int = 1, take: bool = False, tag: str = "a") -> None:
        self.pid_dir = tmp_path / "locks"
        self.go = tmp_path / f"go-{tag}"
        self.release = tmp_path / f"release-{tag}"
        self.args = [sys.executable, "-c", HOLDER, str(self.pid_dir), str(size),
                     str(self.go), str(self.release), "take" if take else "keep"]
        self.procs: list[subprocess.Popen] = []

    def start(self, n: int = 1) -> list[subprocess.Popen]:
        new = [subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        self.procs += new
        return new

    def first_line(self, proc: subprocess.Popen) -> str:
        """Everything up to and including the ACQUIRED/REFUSED line."""
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.strip() in ("ACQUIRED", "REFUSED"):
                break
        return "".join(lines)

    def stop(self) -> None:
        self.release.touch()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


@pytest.fixture
def holders(tmp_path):
    made: list[Holders] = []

    def make(**kwargs) -> Holders:
        h = Holders(tmp_path, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


def test_getpcmd_reads_the_full_command_line_of_a_process():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        # Right after fork the child may still show the parent's command line.
        while trun.lock.getpcmd(proc.pid) != "sleep 30" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert trun.lock.getpcmd(proc.pid) == "sleep 30"
    finally:
        proc.kill()
        proc.wait()


def test_getpcmd_of_a_missing_process_is_a_placeholder_naming_the_pid():
    missing_pid = 2**31 - 2
    assert trun.lock.getpcmd(missing_pid) == f"[PROCESS_WITH_PID={missing_pid}]"


def test_get_info_names_the_pid_file_after_the_md5_of_the_command_line(tmp_path):
    pid, cmd, pid_file = trun.lock.get_info(str(tmp_path))
    assert pid == os.getpid()
    assert cmd == trun.lock.getpcmd(os.getpid())
    assert pid_file == str(tmp_path / (hashlib.md5(cmd.encode()).hexdigest() + ".pid"))


def test_acquire_for_records_own_pid_in_a_new_private_pid_dir(tmp_path):
    pid_dir = tmp_path / "fresh"
    assert trun.lock.acquire_for(str(pid_dir)) is True
    _, _, pid_file = trun.lock.get_info(str(pid_dir))
    assert Path(pid_file).read_text().split() == [str(os.getpid())]
    assert stat.S_IMODE(pid_dir.stat().st_mode) == 0o700


def test_acquire_for_makes_the_pid_file_writable_by_other_users(tmp_path):
    trun.lock.acquire_for(str(tmp_path))
    _, _, pid_file = trun.lock.get_info(str(tmp_path))
    assert stat.S_IMODE(os.stat(pid_file).st_mode) & 0o777 == 0o777


def test_a_process_never_blocks_itself(tmp_path):
    assert trun.lock.acquire_for(str(tmp_path)) is True
    assert trun.lock.acquire_for(str(tmp_path)) is True


def test_second_identical_process_is_refused_with_already_running_message(holders):
    h = holders()
    (first,) = h.start()
    h.go.touch()
    assert h.first_line(first).strip() == "ACQUIRED"
    (second,) = h.start()
    out = h.first_line(second)
    assert f"Pid(s) {{{first.pid}}} already running" in out
    assert out.strip().endswith("REFUSED")


def test_identical_processes_started_together_take_the_lock_only_once(holders):
    h = holders()
    procs = h.start(4)
    h.go.touch()  # release them at the same instant
    results = sorted(h.first_line(p).strip().splitlines()[-1] for p in procs)
    assert results == ["ACQUIRED", "REFUSED", "REFUSED", "REFUSED"]


def test_lock_size_two_admits_two_identical_processes(holders):
    h = holders(size=2)
    h.go.touch()
    first, second = h.start(2)
    assert {h.first_line(first).strip(), h.first_line(second).strip()} == {"ACQUIRED"}
    (third,) = h.start()
    assert h.first_line(third).strip().endswith("REFUSED")


def test_different_command_lines_do_not_share_a_lock(holders):
    a = holders(tag="a")
    b = holders(tag="b")
    a.go.touch()
    b.go.touch()
    (pa,) = a.start()
    assert a.first_line(pa).strip() == "ACQUIRED"
    (pb,) = b.start()
    assert b.first_line(pb).strip() == "ACQUIRED"


def test_dead_holders_do_not_count(holders):
    h = holders()
    h.go.touch()
    (first,) = h.start()
    assert h.first_line(first).strip() == "ACQUIRED"
    first.kill()
    first.wait()
    (second,) = h.start()
    assert h.first_line(second).strip() == "ACQUIRED"


def test_a_live_pid_running_another_command_does_not_count(tmp_path):
    other = subprocess.Popen(["sleep", "30"])
    try:
        _, _, pid_file = trun.lock.get_info(str(tmp_path))
        Path(pid_file).write_text(f"{other.pid}\n")
        assert trun.lock.acquire_for(str(tmp_path)) is True
        assert sorted(Path(pid_file).read_text().split()) == sorted([str(os.getpid())])
    finally:
        other.kill()
        other.wait()


def test_take_lock_signals_the_holder_and_takes_over(holders):
    h = holders(take=True)
    h.go.touch()
    (first,) = h.start()
    assert h.first_line(first).strip().endswith("ACQUIRED")
    (taker,) = h.start()
    out = h.first_line(taker)
    assert f"Sent kill signal to Pids: {{{first.pid}}}" in out
    assert out.strip().endswith("ACQUIRED")
    signalled = Path(f"{h.release}.signalled.{first.pid}")
    deadline = time.monotonic() + 5
    while not signalled.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert signalled.exists()


def test_take_lock_refuses_a_second_taker(holders):
    h = holders(take=True)
    h.go.touch()
    (first,) = h.start()
    h.first_line(first)
    (taker,) = h.start()
    assert h.first_line(taker).strip().endswith("ACQUIRED")
    (late,) = h.start()
    out = h.first_line(late)
    assert "already running" in out
    assert out.strip().endswith("REFUSED")
