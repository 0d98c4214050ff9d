"""End to end: several real worker processes racing on one graph through one real ``trund``.

The promise under test is the reason ``trund`` exists: however many workers
(cron on several machines) schedule the same workflow at once, each step runs
at most once at any moment, and a step that is done is not run again. Each
trial starts 4 ``python -m trun`` processes together on a fan-in of 30 leaves
and counts, from the run log the steps write (see ``e2e_steps``), how often
and when each step ran.
"""
from __future__ import annotations

from pathlib import Path

import e2e_steps
import pytest
from e2e_steps import overlapping_runs, read_runs, runs_by_step, start_worker, wait_for_exit

from trun.rpc import RemoteScheduler

pytestmark = pytest.mark.slow

WIDTH = 30
TRIALS = 5
# Two of the four processes run steps in child processes (--workers 2), so up
# to six attempts at the graph compete at once.
WORKER_SLOTS = ["1", "1", "2", "2"]


def run_trial(trund_url: str, out_dir: Path) -> dict[str, list[e2e_steps.Run]]:
    """Race the four workers on one fresh fan-in; returns the runs found in the log."""
    out_dir.mkdir()
    step_args = ["FanIn", "--out-dir", str(out_dir), "--width", str(WIDTH), "--sleep", "0.05"]
    logs = [out_dir / f"worker{i}.log" for i in range(len(WORKER_SLOTS))]
    procs = [start_worker([*step_args, "--workers", slots], trund_url, log)
             for slots, log in zip(WORKER_SLOTS, logs)]
    exit_codes = [wait_for_exit(proc, log, timeout=40) for proc, log in zip(procs, logs)]
    assert exit_codes == [0] * len(procs), "\n".join(log.read_text()[-2000:] for log in logs)
    return runs_by_step(read_runs(out_dir))


def test_racing_workers_run_every_step_exactly_once_and_never_concurrently(trund, tmp_path):
    workers_per_trial = []
    for trial in range(TRIALS):
        out_dir = tmp_path / f"trial{trial}"
        runs = run_trial(trund.url, out_dir)

        expected = {e2e_steps.Leaf(out_dir=str(out_dir), n=i, sleep=0.05).step_id for i in range(WIDTH)}
        expected.add(e2e_steps.FanIn(out_dir=str(out_dir), width=WIDTH, sleep=0.05).step_id)
        assert set(runs) == expected, f"trial {trial}: steps run differ from the graph"
        ran_more_than_once = {step_id: rs for step_id, rs in runs.items() if len(rs) != 1}
        assert ran_more_than_once == {}, f"trial {trial}: steps not run exactly once"
        assert overlapping_runs(runs) == {}, f"trial {trial}: two runs of one step overlapped"
        assert all(rs[0].end is not None for rs in runs.values()), f"trial {trial}: a run never finished"
        workers_per_trial.append({rs[0].worker for rs in runs.values()})

    # The race is real only if the work was shared: otherwise the test proved nothing.
    assert any(len(workers) > 1 for workers in workers_per_trial), \
        f"one worker ran everything in every trial: {workers_per_trial}"


def test_racing_workers_leave_every_step_done_in_trund(trund, tmp_path):
    out_dir = tmp_path / "graph"
    runs = run_trial(trund.url, out_dir)

    done = RemoteScheduler(trund.url).step_list(status="DONE")
    assert set(runs) <= set(done)
