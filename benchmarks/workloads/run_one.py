"""One measurement, in a fresh process: build one workload with trun or Luigi and report as JSON.

The harness starts this script once per measurement, with the Python of the
implementation under test (the Luigi one lives in its own virtualenv), so
nothing one measurement leaves behind (instance caches, registries, heap
growth) colours the next::

    python run_one.py --impl trun --shape fanin --size 1000 --result out.json \\
        [--scheduler-url http://127.0.0.1:PORT/] [--layer-width 50]

Without ``--scheduler-url`` the in-process scheduler is used. The timed window
is the ``build`` call plus the creation of its root steps; the interpreter's
start and the library's import are not in it (the harness times imports
apart, in processes of their own). The result
file holds the wall time, the step count, the peak RSS of this process (and
of its children, for ``--workers 2``) and an ``error`` when the run did not
complete every step.

Hazards: stdlib only besides the library under test (see ``shapes``). Logging
is set to WARNING on both sides: the per-step log lines are not what is being
compared.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any


def _peak_rss_mb(who: int) -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(who).ru_maxrss / 1024.0


def _marker_dir() -> str:
    """A fresh directory for completion markers, in memory (/dev/shm) where the system has one."""
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix="trun-bench-markers-", dir=base)


def measure(impl: str, shape: str, size: int, scheduler_url: str, layer_width: int) -> dict[str, Any]:
    """Run the workload once and describe the outcome (see the module docstring)."""
    os.environ["BENCH_IMPL"] = impl
    markers = _marker_dir() if shape == "workers2" else None
    if markers:
        os.environ["BENCH_MARKER_DIR"] = markers
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import shapes

        shapes.prepare_workload(shape, size)
        env_params: dict[str, Any] = {"log_level": "WARNING"}
        if scheduler_url:
            env_params["scheduler_url"] = scheduler_url
        else:
            env_params["local_scheduler"] = True

        started = time.perf_counter()
        workload = shapes.build_workload(shape, size, layer_width)
        env_params["workers"] = workload.workers
        error = None
        try:
            succeeded = shapes.lib.build(workload.roots, **env_params)
        except Exception as exc:  # the harness reports it; the measurement must not vanish
            succeeded = False
            error = f"build() raised {type(exc).__name__}: {exc}"
            traceback.print_exc()
        wall_s = time.perf_counter() - started

        done = shapes.count_done()
        if error is None and not succeeded:
            error = "build() reported that scheduling or a step failed"
        if error is None and done != workload.steps:
            error = f"only {done} of {workload.steps} steps are complete after build()"
        if error is None and workload.expected_runs == 0 and shapes.runs:
            error = f"{shapes.runs} steps ran although the whole graph was complete"
        return {
            "impl": impl,
            "shape": shape,
            "size": size,
            "steps": workload.steps,
            "backend": "central" if scheduler_url else "local",
            "wall_s": wall_s,
            "us_per_step": wall_s / workload.steps * 1e6,
            "worker_rss_mb": _peak_rss_mb(resource.RUSAGE_SELF),
            "children_rss_mb": _peak_rss_mb(resource.RUSAGE_CHILDREN),
            "error": error,
        }
    finally:
        if markers:
            shutil.rmtree(markers, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("trun", "luigi"), required=True)
    parser.add_argument("--shape", required=True, choices=("fanin", "chain", "layered", "rerun", "workers2"))
    parser.add_argument("--size", type=int, required=True, help="number of steps (leaves for fan-in)")
    parser.add_argument("--scheduler-url", default="", help="central scheduler to use (default: in-process)")
    parser.add_argument("--layer-width", type=int, default=50, help="steps per layer of the layered DAG")
    parser.add_argument("--result", required=True, help="file to write the JSON result to")
    args = parser.parse_args(argv)
    result = measure(args.impl, args.shape, args.size, args.scheduler_url, args.layer_width)
    Path(args.result).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
