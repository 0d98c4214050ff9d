"""Central schedulers for the benchmarks: a real ``trund`` or ``luigid`` on a free loopback port.

``SchedulerDaemon.trund(workdir)`` / ``SchedulerDaemon.luigid(luigid, workdir)``
start the daemon in the foreground as a child process, with its state and log
in ``workdir`` and no configuration file of the machine in reach; ``url`` is
what a worker is given; ``peak_rss_mb()`` is the high-water mark of its
resident memory so far (``VmHWM``). Use it as a context manager so that it is
stopped (SIGTERM, then SIGKILL after a grace period) whatever happens.

Hazards: the peak comes from ``/proc`` and is only known on Linux; elsewhere
the current RSS from psutil is reported instead, or None without psutil.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment() -> dict[str, str]:
    """This process's environment without the variables that point trun or Luigi at a config file.

    ``PYTHONDONTWRITEBYTECODE`` goes too: an installed package has its
    bytecode cached, and a machine that disables the cache would have every
    measured process compile each library module from source when first
    imported (about 40 ms of a ``build()``, most of the time of a small one).
    """
    env = dict(os.environ)
    for name in ("TRUN_CONFIG_PATH", "TRUN_CONFIG_PARSER", "LUIGI_CONFIG_PATH", "LUIGI_CONFIG_PARSER",
                 "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of process ``pid`` in MiB (current RSS where the peak is not known)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / (1024.0 * 1024.0)
    except psutil.Error:
        return None


class SchedulerDaemon:
    """One central scheduler child process listening on ``127.0.0.1:<port>``."""

    def __init__(self, name: str, command: list[str], workdir: Path, port: int) -> None:
        self.name = name
        self.command = command
        self.workdir = workdir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"

    @classmethod
    def trund(cls, workdir: Path, python: str = sys.executable) -> SchedulerDaemon:
        """A ``trund`` run by ``python`` (the interpreter trun is installed in)."""
        port = free_port()
        command = [python, "-c", "from trun.cmdline import trund; trund()",
                   "--address", "127.0.0.1", "--port", str(port), "--state-path", str(workdir / "trund-state")]
        return cls("trund", command, workdir, port)

    @classmethod
    def luigid(cls, luigid: Path, workdir: Path) -> SchedulerDaemon:
        """A ``luigid`` from the Luigi virtualenv."""
        port = free_port()
        command = [str(luigid), "--address", "127.0.0.1", "--port", str(port),
                   "--state-path", str(workdir / "luigid-state.pickle")]
        return cls("luigid", command, workdir, port)

    @property
    def url(self) -> str:
        """Where workers reach the scheduler."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30.0) -> SchedulerDaemon:
        """Start the daemon and wait until it accepts connections (a running daemon is left as it is)."""
        if self.process is not None and self.process.poll() is None:
            return self  # ``with daemon.start():`` must not start a second one
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.workdir, env=clean_environment())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode} at start: "
                                   f"{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on port {self.port} within {timeout:.0f} s: "
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 3) -> str:
        """The last lines the daemon wrote (its log goes away with its working directory)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def peak_rss_mb(self) -> float | None:
        """The daemon's peak resident memory so far, in MiB."""
        if self.process is None or self.process.poll() is not None:
            return None
        return peak_rss_mb(self.process.pid)

    def stop(self, grace: float = 20.0) -> None:
        """Ask the daemon to stop; kill it if it has not after ``grace`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> SchedulerDaemon:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
