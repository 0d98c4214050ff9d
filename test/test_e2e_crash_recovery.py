"""End to end: crashes in the middle of a run, with a real ``trund`` and real worker processes.

Two crashes an operator meets: ``trund`` is killed (``kill -9``, an OOM kill, a
reboot) while workers are running, and comes back on the same port and state
path; or a worker dies with a step half done. In the first case the workers
must ride out the outage on their RPC retries, and nothing ``trund`` had
acknowledged as DONE may be forgotten or run again. In the second, the step
the dead worker held must go to another worker once that worker has been
silent for ``worker_disconnect_delay``.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import e2e_steps
import pytest
from conftest import wait_until
from e2e_steps import overlapping_runs, read_runs, runs_by_step, start_worker, wait_for_exit

from trun.rpc import RemoteScheduler

pytestmark = pytest.mark.slow


def write_cfg(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def finished(out_dir: Path) -> set[str]:
    """Ids of the steps whose run wrote its end line."""
    return {e.step_id for e in read_runs(out_dir) if e.event == "end"}


def test_kill_9_of_trund_mid_run_loses_no_done_step_and_workers_carry_on(trund_factory, tmp_path):
    # Workers retry every 0.5 s for up to ~20 s: a restart takes about a second.
    client_cfg = write_cfg(tmp_path / "client.cfg", "[core]\nrpc_retry_wait = 0.5\nrpc_retry_attempts = 40\n")
    trund = trund_factory()
    out_dir = tmp_path / "graph"
    out_dir.mkdir()
    width = 24
    step_args = ["FanIn", "--out-dir", str(out_dir), "--width", str(width), "--sleep", "0.15"]
    logs = [out_dir / f"worker{i}.log" for i in range(2)]
    procs = [start_worker(step_args, trund.url, log, {"TRUN_CONFIG_PATH": client_cfg}) for log in logs]

    wait_until(lambda: len(finished(out_dir)) >= 6, timeout=30, what="six steps have run")
    acknowledged_done = set(RemoteScheduler(trund.url).step_list(status="DONE"))
    trund.kill(signal.SIGKILL)
    finished_at_kill = finished(out_dir)
    time.sleep(1.0)  # long enough for both workers to find the scheduler gone
    trund.log.close()
    trund.start()
    done_after_restart = set(RemoteScheduler(trund.url).step_list(status="DONE"))

    assert acknowledged_done, "no step was DONE before the kill: the test proved nothing"
    assert len(finished_at_kill) < width + 1, "the graph finished before the kill: the test proved nothing"
    assert acknowledged_done <= done_after_restart, "trund forgot acknowledged DONE steps"
    exit_codes = [wait_for_exit(proc, log, timeout=60) for proc, log in zip(procs, logs)]
    assert exit_codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    runs = runs_by_step(read_runs(out_dir))
    assert len(runs) == width + 1
    assert {step_id: rs for step_id, rs in runs.items() if len(rs) != 1} == {}, "a step ran twice"
    assert overlapping_runs(runs) == {}
    assert set(runs) <= set(RemoteScheduler(trund.url).step_list(status="DONE"))


def test_step_of_a_killed_worker_goes_to_another_worker_after_the_disconnect_delay(trund_factory, tmp_path):
    trund_cfg = write_cfg(tmp_path / "trund.cfg", "[scheduler]\nworker_disconnect_delay = 2\n"
                                                  "retry_delay = 0.5\nprune_on_get_work = true\n")
    trund = trund_factory(env={"TRUN_CONFIG_PATH": trund_cfg})
    out_dir = tmp_path / "graph"
    out_dir.mkdir()
    step_args = ["FanIn", "--out-dir", str(out_dir), "--width", "1"]
    leaf = e2e_steps.Leaf(out_dir=str(out_dir), n=0).step_id
    fan_in = e2e_steps.FanIn(out_dir=str(out_dir), width=1).step_id

    # Worker A hangs inside the leaf; it is killed there, holding the step.
    log_a = out_dir / "workerA.log"
    worker_a = start_worker(step_args, trund.url, log_a, {e2e_steps.HANG_ENV: "120"})
    wait_until(lambda: any(e.step_id == leaf for e in read_runs(out_dir)), timeout=30,
               what="worker A has started the leaf")
    worker_a.send_signal(signal.SIGKILL)
    worker_a.wait()

    # Worker B schedules the same graph and waits (keep-alive) for the leaf to be given up.
    log_b = out_dir / "workerB.log"
    worker_b = start_worker([*step_args, "--worker-keep-alive", "--worker-wait-interval", "0.1"],
                            trund.url, log_b)
    assert wait_for_exit(worker_b, log_b, timeout=40) == 0, log_b.read_text()[-3000:]

    runs = runs_by_step(read_runs(out_dir))
    assert [(r.worker, r.end is None) for r in runs[leaf]] == [("workerA", True), ("workerB", False)]
    assert [(r.worker, r.end is None) for r in runs[fan_in]] == [("workerB", False)]
    # A was last in touch when it took the leaf, just before its start line; B
    # may have the leaf only once A has been silent for the disconnect delay.
    assert runs[leaf][1].start - runs[leaf][0].start >= 2
    assert {leaf, fan_in} <= set(RemoteScheduler(trund.url).step_list(status="DONE"))


class StepProcessOutlivedItsWorker(AssertionError):
    """The bug below: a step's child process kept running after its worker was killed."""


def process_is_running(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (an orphan's reaper may be slow to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc")
def test_step_process_of_a_killed_worker_stops_before_another_worker_runs_the_step(trund_factory, tmp_path):
    trund_cfg = write_cfg(tmp_path / "trund.cfg", "[scheduler]\nworker_disconnect_delay = 2\n"
                                                  "retry_delay = 0.5\nprune_on_get_work = true\n")
    trund = trund_factory(env={"TRUN_CONFIG_PATH": trund_cfg})
    out_dir = tmp_path / "graph"
    out_dir.mkdir()
    # --workers 2: the leaf runs in a child process of worker A.
    step_args = ["FanIn", "--out-dir", str(out_dir), "--width", "1", "--workers", "2"]
    leaf = e2e_steps.Leaf(out_dir=str(out_dir), n=0).step_id

    log_a = out_dir / "workerA.log"
    worker_a = start_worker(step_args, trund.url, log_a, {e2e_steps.HANG_ENV: "120"})
    wait_until(lambda: any(e.step_id == leaf for e in read_runs(out_dir)), timeout=30,
               what="worker A has started the leaf")
    step_process_of_a = read_runs(out_dir)[0].pid
    worker_a.send_signal(signal.SIGKILL)
    worker_a.wait()
    try:
        log_b = out_dir / "workerB.log"
        worker_b = start_worker([*step_args, "--worker-keep-alive", "--worker-wait-interval", "0.1"],
                                trund.url, log_b)
        assert wait_for_exit(worker_b, log_b, timeout=40) == 0, log_b.read_text()[-3000:]
        assert [r.worker for r in runs_by_step(read_runs(out_dir))[leaf]] == ["workerA", "workerB"]

        if process_is_running(step_process_of_a):
            raise StepProcessOutlivedItsWorker(
                f"worker A's step process {step_process_of_a} still runs the leaf that worker B ran")
    finally:
        if process_is_running(step_process_of_a):
            os.kill(step_process_of_a, signal.SIGKILL)
