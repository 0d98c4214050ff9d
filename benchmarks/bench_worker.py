"""Per-step overhead of the worker with the in-process scheduler.

Trivial steps whose completion lives in a class-level set, so what is measured
is trun itself: scheduling (``Worker.add``) and running (``Worker.run``).
Two shapes: fan-in (one root requiring N leaves) and a chain of N steps.

Run: ``python benchmarks/bench_worker.py [N ...]`` (default 1000 and 20000);
``--trund`` measures the same through a real ``trund`` started on a free
127.0.0.1 port with a temporary state path (the worker talks to it with
:class:`trun.rpc.RemoteScheduler`). Besides wall time, the CPU time of this
(the worker's) process is shown: on a loaded machine wall time says little.

Hazard: the numbers depend on the machine and its load; compare runs made
one after the other.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trun
from trun.scheduler import Scheduler
from trun.step_register import Register
from trun.worker import Worker

_done: set[tuple[str, int]] = set()


class BenchLeaf(trun.Step):
    i = trun.IntParameter()

    def complete(self) -> bool:
        return ("leaf", self.i) in _done

    def run(self) -> None:
        _done.add(("leaf", self.i))


class BenchRoot(trun.Step):
    n = trun.IntParameter()

    def requires(self) -> list[BenchLeaf]:
        return [BenchLeaf(i) for i in range(self.n)]

    def complete(self) -> bool:
        return ("root", self.n) in _done

    def run(self) -> None:
        _done.add(("root", self.n))


class BenchLink(trun.Step):
    i = trun.IntParameter()

    def requires(self) -> list[BenchLink]:
        return [BenchLink(self.i - 1)] if self.i > 0 else []

    def complete(self) -> bool:
        return ("link", self.i) in _done

    def run(self) -> None:
        _done.add(("link", self.i))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of stat(5) (utime, stime); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running_trund() -> Iterator[tuple[str, int]]:
    """A ``trund`` child process on a free loopback port; yields its URL and process id."""
    with tempfile.TemporaryDirectory(prefix="trun-bench-worker-") as workdir:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        config = Path(workdir) / "trun.cfg"
        # Long delays: nothing may expire or be pruned while we measure.
        config.write_text("[scheduler]\nworker_disconnect_delay = 3600\nremove_delay = 3600\n"
                          "[core]\nno_configure_logging = true\n")
        with open(Path(workdir) / "trund.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from trun.cmdline import trund; trund()", "--address", "127.0.0.1",
                 "--port", str(port), "--state-path", str(Path(workdir) / "state")],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, TRUN_CONFIG_PATH=str(config)))
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        urllib.request.urlopen(urllib.request.Request(url + "/", method="HEAD"), timeout=1)
                        break
                    except OSError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(f"trund did not start; see {log.name}") from None
                        time.sleep(0.05)
                yield url, proc.pid
            finally:
                proc.terminate()
                proc.wait(timeout=120)


def measure(shape: str, n: int, scheduler_url: str | None = None, scheduler_pid: int | None = None) -> dict[str, Any]:
    """Schedule and run one workload; print and return its timings."""
    _done.clear()
    Register.clear_instance_cache()
    gc.collect()
    root = BenchRoot(n) if shape == "fan-in" else BenchLink(n - 1)
    steps = n + 1 if shape == "fan-in" else n
    if scheduler_url is None:
        scheduler: Any = Scheduler(prune_on_get_work=True)
    else:
        from trun.rpc import RemoteScheduler
        scheduler = RemoteScheduler(scheduler_url)
    with Worker(scheduler=scheduler, wait_interval=0.01, wait_jitter=0) as worker:
        trund_cpu_started = process_cpu_seconds(scheduler_pid) if scheduler_pid else 0.0
        started, cpu_started = time.perf_counter(), time.process_time()
        assert worker.add(root)
        scheduled = time.perf_counter()
        assert worker.run()
        finished, cpu_finished = time.perf_counter(), time.process_time()
        trund_cpu = process_cpu_seconds(scheduler_pid) - trund_cpu_started if scheduler_pid else 0.0
    assert len(_done) == steps, (len(_done), steps)
    add_s, run_s, total = scheduled - started, finished - scheduled, finished - started
    cpu = cpu_finished - cpu_started
    where = "trund" if scheduler_url else "local"
    print(f"{where:5} {shape:7} {steps:>7} steps: total {total:7.3f} s = {total / steps * 1e6:7.1f} µs/step "
          f"(add {add_s / steps * 1e6:6.1f}, run {run_s / steps * 1e6:6.1f}); "
          f"worker CPU {cpu / steps * 1e6:6.1f} µs/step"
          + (f", trund CPU {trund_cpu / steps * 1e6:6.1f} µs/step" if scheduler_pid else ""), flush=True)
    return {"where": where, "shape": shape, "steps": steps, "seconds": total, "add_seconds": add_s,
            "run_seconds": run_s, "worker_cpu_seconds": cpu, "trund_cpu_seconds": trund_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 20000])
    parser.add_argument("--trund", action="store_true", help="use a real trund instead of the in-process scheduler")
    parser.add_argument("--shapes", nargs="+", default=["fan-in", "chain"], choices=["fan-in", "chain"])
    args = parser.parse_args()
    for n in args.sizes:
        for shape in args.shapes:
            if args.trund:
                # A fresh trund per measurement: no steps of the previous run are known.
                with running_trund() as (url, pid):
                    measure(shape, n, url, pid)
            else:
                measure(shape, n)


if __name__ == "__main__":
    main()
