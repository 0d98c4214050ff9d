"""The ``trund`` command itself: daemon mode, pidfile, log directory, signals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from trun import process


def trund_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from trun.cmdline import trund; trund()", *args]


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/", method="HEAD"), timeout=1)
        return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except OSError:
        return True
    return state != b"Z"


def wait_for(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_background_daemonizes_writes_pidfile_and_log_and_stops_cleanly_on_sigterm(tmp_path, free_port):
    pidfile, logdir, state = tmp_path / "run" / "trund.pid", tmp_path / "log", tmp_path / "state"
    url = f"http://127.0.0.1:{free_port}"
    result = subprocess.run(trund_command("--background", "--pidfile", str(pidfile), "--logdir", str(logdir),
                                          "--address", "127.0.0.1", "--port", str(free_port),
                                          "--state-path", str(state)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    pid = 0
    try:
        assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() and answers(url))
        pid = int(pidfile.read_text())
        assert pid != os.getpid() and alive(pid)

        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not alive(pid)), "trund did not stop on SIGTERM"
    finally:
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert not pidfile.exists()
    log = (logdir / "trund.log").read_text()
    assert "received SIGTERM" in log and "trund stopped" in log
    assert json.loads((state / "snapshot.json").read_text())["format"] == "trund-state"


def test_live_pid_in_pidfile_refuses_to_start_with_one_line(trund_factory, tmp_path, free_port):
    pidfile = tmp_path / "trund.pid"
    first = trund_factory(extra_args=["--pidfile", str(pidfile)])
    assert wait_for(pidfile.exists)
    result = subprocess.run(trund_command("--pidfile", str(pidfile), "--address", "127.0.0.1",
                                          "--port", str(free_port), "--state-path", str(tmp_path / "other")),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"already running with pid {first.proc.pid}" in lines[0]
    assert pidfile.read_text().strip() == str(first.proc.pid)  # the refused one left it alone


def test_stale_pidfile_does_not_prevent_start(trund_factory, tmp_path):
    pidfile = tmp_path / "trund.pid"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    server = trund_factory(extra_args=["--pidfile", str(pidfile)])
    assert pidfile.read_text().strip() == str(server.proc.pid)


def test_pidfile_naming_a_live_non_trun_process_does_not_prevent_start(trund_factory, tmp_path):
    # After a reboot the recorded pid may belong to an unrelated process.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile = tmp_path / "trund.pid"
        pidfile.write_text(f"{other.pid}\n")
        server = trund_factory(extra_args=["--pidfile", str(pidfile)])
        assert pidfile.read_text().strip() == str(server.proc.pid)
    finally:
        other.kill()
        other.wait()


def test_foreground_pidfile_is_removed_on_clean_stop(trund_factory, tmp_path):
    pidfile = tmp_path / "trund.pid"
    server = trund_factory(extra_args=["--pidfile", str(pidfile)])
    server.kill(signal.SIGTERM)
    assert not pidfile.exists()


def test_logdir_writes_trund_log_in_the_foreground(trund_factory, tmp_path):
    logdir = tmp_path / "logs"
    server = trund_factory(extra_args=["--logdir", str(logdir)])
    server.kill(signal.SIGINT)
    assert server.proc.returncode == 0
    log = (logdir / "trund.log").read_text()
    assert "trun.server" in log and "received SIGINT" in log


def test_sigint_stops_cleanly_with_a_final_snapshot(trund):
    trund.kill(signal.SIGINT)
    assert trund.proc.returncode == 0
    assert (trund.state_path / "snapshot.json").exists()


def test_unwritable_logdir_is_one_clear_line(tmp_path, free_port):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = subprocess.run(trund_command("--logdir", str(blocker / "logs"), "--port", str(free_port),
                                          "--state-path", str(tmp_path / "state")),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith("trund: cannot create the log directory")


@pytest.mark.parametrize("config, message", [
    ("[scheduler]\nmetrics_collector = bogus\n", "metrics_collector must be one of"),
    ("[scheduler]\nmetrics_collector = datadog\n[datadog]\nstatsd_host = no-such-host.invalid\n",
     "[datadog] statsd_host = no-such-host.invalid: cannot resolve"),
    ("[scheduler]\nidle_connection_timeout = 0\n", "idle_connection_timeout = 0: it must be a number of seconds"),
])
def test_bad_scheduler_setting_is_one_clear_line(tmp_path, free_port, config, message):
    cfg = tmp_path / "trun.cfg"
    cfg.write_text(config)
    result = subprocess.run(trund_command("--port", str(free_port), "--state-path", str(tmp_path / "state")),
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "TRUN_CONFIG_PATH": str(cfg)})
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]  # after the log's start-up line
    assert last_line.startswith("trund: cannot start: ") and message in last_line
    assert "Traceback" not in result.stderr


def test_help_lists_the_luigid_flags(capsys):
    with pytest.raises(SystemExit) as info:
        process.trund_main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--port", "--address", "--unix-socket", "--state-path", "--background", "--pidfile",
                 "--logdir", "--ignore-bad-state"):
        assert flag in out


def test_check_pid_ignores_missing_and_garbage_pidfiles(tmp_path):
    assert process.check_pid(None) == 0
    assert process.check_pid(str(tmp_path / "missing.pid")) == 0
    (tmp_path / "garbage.pid").write_text("not a pid")
    assert process.check_pid(str(tmp_path / "garbage.pid")) == 0


def test_write_pid_creates_the_directory(tmp_path):
    target = tmp_path / "a" / "b" / "trund.pid"
    process.write_pid(str(target))
    assert target.read_text().strip() == str(os.getpid())
