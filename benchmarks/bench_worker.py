"""Per-step overhead of the worker with the in-process scheduler.

Trivial steps whose completion lives in a class-level set, so what is measured
is trun itself: scheduling (``Worker.add``) and running (``Worker.run``).
Two shapes: fan-in (one root requiring N leaves) and a chain of N steps.

Run: ``python benchmarks/bench_worker.py [N ...]`` (default 1000 and 20000).
"""
from __future__ import annotations

import argparse
import gc
import time

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


def measure(shape: str, n: int) -> None:
    _done.clear()
    Register.clear_instance_cache()
    gc.collect()
    root = BenchRoot(n) if shape == "fan-in" else BenchLink(n - 1)
    steps = n + 1 if shape == "fan-in" else n
    with Worker(scheduler=Scheduler(prune_on_get_work=True), wait_interval=0.01, wait_jitter=0) as worker:
        started = time.perf_counter()
        assert worker.add(root)
        scheduled = time.perf_counter()
        assert worker.run()
        finished = time.perf_counter()
    assert len(_done) == steps, (len(_done), steps)
    add_s, run_s, total = scheduled - started, finished - scheduled, finished - started
    print(f"{shape:7} {steps:>7} steps: total {total:7.3f} s = {total / steps * 1e6:7.1f} µs/step "
          f"(add {add_s / steps * 1e6:6.1f} µs/step, run {run_s / steps * 1e6:6.1f} µs/step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 20000])
    args = parser.parse_args()
    for n in args.sizes:
        for shape in ("fan-in", "chain"):
            measure(shape, n)


if __name__ == "__main__":
    main()
