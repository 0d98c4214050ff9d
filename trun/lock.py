"""Process lock: refuse to start a command that is already running.

``trun`` keeps a small pid file per distinct command line so that a crontab
entry firing every minute does not pile up copies of the same workflow. The key
is the md5 of the *full command line of the current process* (read from
``/proc/<pid>/cmdline``), so the same step with different arguments gets a
different lock. The pid file ``<lock_pid_dir>/<md5>.pid`` lists the pids that
hold the lock; a pid only counts while a live process with that pid still runs
the identical command line, so stale entries (crashed runs, reused pids) simply
stop counting. Nothing is removed at exit.

Hazards:

* The key is the process command line, not the step: ``trun.run`` called twice
  in one Python process shares one key. A process never blocks itself (its own
  pid is ignored when counting holders), so such repeated calls are allowed.
* Reading, checking and rewriting the pid file happens under an exclusive
  ``flock`` where the platform has one, so two identical commands started at
  the same instant cannot both acquire a lock of size 1 (Luigi has that race).
* On systems without ``/proc`` the command line is read with ``ps``; where even
  that fails a placeholder unique to the pid is used, which makes the lock a
  per-process no-op rather than a false "already running".
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from typing import IO

try:  # POSIX only; without it the pid file update is not atomic (as in Luigi)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["getpcmd", "get_info", "acquire_for"]


def getpcmd(pid: int) -> str:
    """Return the full command line of process ``pid`` as one space-joined string.

    Arguments are joined with single spaces (as ``/proc/<pid>/cmdline`` reads
    with its NUL separators replaced). If the process does not exist or its
    command line cannot be read, returns ``"[PROCESS_WITH_PID=<pid>]"``.
    """
    proc_file = f"/proc/{pid}/cmdline"
    if os.path.isdir("/proc"):
        try:
            with open(proc_file, "rb") as fh:
                raw = fh.read()
        except OSError:
            raw = b""
        if raw:
            return raw.decode("utf-8", "replace").replace("\0", " ").rstrip()
    elif os.name != "nt":
        # macOS / BSD: no /proc, but ``ps`` reports the full command.
        try:
            out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)],
                                 capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return f"[PROCESS_WITH_PID={pid}]"


def get_info(pid_dir: str, my_pid: int | None = None) -> tuple[int, str, str]:
    """Return ``(pid, command line, pid file path)`` for ``my_pid`` (default: this process).

    The pid file is ``<pid_dir>/<md5 of the command line>.pid``.
    """
    if my_pid is None:
        my_pid = os.getpid()
    my_cmd = getpcmd(my_pid)
    digest = hashlib.md5(my_cmd.encode("utf-8"), usedforsecurity=False).hexdigest()
    return my_pid, my_cmd, os.path.join(pid_dir, digest + ".pid")


def acquire_for(pid_dir: str, num_available: int = 1, kill_signal: int | None = None) -> bool:
    """Try to take the lock for this process's command line; return whether it was taken.

    ``num_available`` is how many identical processes may run at once
    (``[core] lock_size``). With ``kill_signal`` (``--take-lock`` sends
    ``SIGUSR1``) the current holders are signalled — a trun worker stops asking
    for new work on ``SIGUSR1`` — and one extra holder is allowed so this
    process can take over. When the lock is not available, prints
    ``Pid(s) {…} already running`` and returns False.
    """
    my_pid, my_cmd, pid_file = get_info(pid_dir)
    _make_pid_dir(pid_dir)

    with _locked_pid_file(pid_file) as fh:
        fh.seek(0)
        recorded = _parse_pids(fh.read())
        holders = {pid for pid in recorded if pid != my_pid and getpcmd(pid) == my_cmd}

        if kill_signal is not None:
            for pid in holders:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, kill_signal)
            print(f"Sent kill signal to Pids: {holders}")
            # The signalled holders finish their current steps; allow exactly
            # one taker on top of them, never a stack of takers.
            num_available += 1

        if len(holders) >= num_available:
            print(f"Pid(s) {holders} already running")
            if kill_signal is not None:
                print('Note: There have (probably) been 1 other "--take-lock"'
                      " process which continued to run! Probably no need to run"
                      " this one as well.")
            return False

        fh.seek(0)
        fh.truncate()
        fh.writelines(f"{pid}\n" for pid in sorted(holders | {my_pid}))
        fh.flush()

    _share_pid_file(pid_file)
    return True


def _make_pid_dir(pid_dir: str) -> None:
    try:
        os.makedirs(pid_dir, mode=0o700)
    except FileExistsError:
        pass


@contextlib.contextmanager
def _locked_pid_file(pid_file: str) -> Iterator[IO[str]]:
    # "a+" creates the file without truncating it; reads need an explicit seek.
    with open(pid_file, "a+") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _parse_pids(text: str) -> set[int]:
    pids = set()
    for line in text.splitlines():
        line = line.strip()
        if line.isdigit():
            pids.add(int(line))
    return pids


def _share_pid_file(pid_file: str) -> None:
    # Another user running the same command must be able to update the file.
    if os.name == "nt" or not hasattr(os, "getuid"):
        return
    st = os.stat(pid_file)
    if st.st_uid == os.getuid():
        os.chmod(pid_file, st.st_mode | 0o777)
