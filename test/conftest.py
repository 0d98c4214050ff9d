"""Shared fixtures: isolation of trun's global state, free ports, a real running ``trund``.

Every test starts with an empty instance cache and the configuration files of
the test run only (a developer's own ``trun.cfg`` never leaks in).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Keep the suite independent of config files on the machine running it.
os.environ.pop("TRUN_CONFIG_PATH", None)
os.environ.pop("TRUN_CONFIG_PARSER", None)


@pytest.fixture(autouse=True)
def _isolate_trun_globals(monkeypatch, tmp_path):
    """Fresh instance cache and configuration for each test."""
    monkeypatch.chdir(tmp_path)  # no stray trun.cfg from the cwd
    from trun.step_register import Register
    Register.clear_instance_cache()
    # Step classes defined inside a test are forgotten after it, so two tests may
    # both define a ``Flagged`` step without making the family ambiguous.
    registered_before = len(Register._reg)
    namespaces_before = dict(Register._default_namespace_dict)
    from trun import configuration
    configuration.reset_config()
    yield
    # Only classes defined inside functions: a module imported during the test
    # (trun.tools.range, say) keeps its steps registered for the tests after it.
    Register._reg[registered_before:] = [
        cls for cls in Register._reg[registered_before:] if "<locals>" not in cls.__qualname__]
    Register._default_namespace_dict.clear()
    Register._default_namespace_dict.update(namespaces_before)
    Register._reg_generation += 1
    Register.clear_instance_cache()
    from trun import configuration
    configuration.reset_config()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; a slow machine makes this slower, never fail before ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.02)


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return find_free_port()


class TrundProcess:
    """A real ``trund`` child process on a loopback port."""

    def __init__(self, state_dir: Path, extra_args: list[str] | None = None, env: dict | None = None):
        self.state_dir = state_dir
        self.extra_args = list(extra_args or [])
        self.env = env
        self.port = find_free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_path(self) -> Path:
        return self.state_dir / "trund-state"

    def start(self, timeout: float = 15.0) -> "TrundProcess":
        cmd = [sys.executable, "-c", "from trun.cmdline import trund; trund()",
               "--address", "127.0.0.1", "--port", str(self.port),
               "--state-path", str(self.state_path), *self.extra_args]
        env = dict(os.environ, **(self.env or {}))
        self.log = open(self.state_dir / f"trund-{self.port}.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"trund exited with {self.proc.returncode}: "
                                   + (self.state_dir / f"trund-{self.port}.log").read_text())
            try:
                req = urllib.request.Request(self.url + "/", method="HEAD")
                urllib.request.urlopen(req, timeout=1)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("trund did not answer in time")

    def kill(self, sig: int = 9) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def restart(self) -> "TrundProcess":
        self.stop()
        return self.start()


@pytest.fixture
def trund_factory(tmp_path):
    """Start real trund processes: ``trund_factory(extra_args=[...])``; all stopped at teardown."""
    started: list[TrundProcess] = []

    def make(extra_args=None, env=None, state_dir=None) -> TrundProcess:
        d = Path(state_dir) if state_dir else tmp_path / f"trund{len(started)}"
        d.mkdir(parents=True, exist_ok=True)
        p = TrundProcess(d, extra_args, env).start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def trund(trund_factory) -> TrundProcess:
    """One real trund on a free loopback port; ``trund.url`` to reach it."""
    return trund_factory()
