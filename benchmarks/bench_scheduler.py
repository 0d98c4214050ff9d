"""How ``get_work`` and ``add_step`` of ``trun.scheduler.Scheduler`` scale with the number of known steps.

Run ``python benchmarks/bench_scheduler.py`` (``--sizes 1000 100000``,
``--iterations 2000``). For each size it builds a scheduler in process,
measures ``add_step`` throughput while adding the steps (one call each, and the
bulk ``add_steps``), then measures the latency of ``get_work`` calls, each
followed by a DONE report for the step handed out, in four situations:

``plain``      one worker, no resource needs (Luigi's "trivial worker" path);
``resources``  steps need a resource with room for a few at a time, four
               workers with several processes each (greedy reservation path);
``many-done``  99 % of the known steps are DONE, the rest pending;
``assistant``  an assistant worker asking for any runnable step.

``get_work`` should stay roughly flat from 1,000 to 100,000 known steps.
A full ``gc.collect()`` runs before each measurement; the "max" column still
shows any garbage-collector pause that falls inside one (with 100,000 steps a
full collection takes a good fraction of a second: ``--no-gc`` shows the
scheduler alone).
"""
from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trun.scheduler import Scheduler  # noqa: E402
from trun.step_status import DONE  # noqa: E402


def _scheduler() -> Scheduler:
    # Long delays: nothing times out while we measure.
    return Scheduler(config={}, retry_delay=900, remove_delay=3600, worker_disconnect_delay=3600,
                     stable_done_cooldown_secs=0)


def _step_kwargs(i: int, rng: random.Random, resources: dict[str, int] | None = None) -> dict:
    # Chains of 10: each step needs the one before it in its chain.
    deps = [f"S{i - 1}"] if i % 10 else []
    return dict(step_id=f"S{i}", deps=deps, priority=rng.randint(0, 9), family="Bench",
                params={"i": str(i)}, resources=resources)


def build(n: int, workers: list[str], *, resources: dict[str, int] | None = None,
          done_fraction: float = 0.0, seed: int = 1) -> tuple[Scheduler, float]:
    """A scheduler knowing ``n`` steps; returns it and the add_step rate (calls/s)."""
    rng = random.Random(seed)
    sch = _scheduler()
    if resources:
        sch.update_resources(r=3)
    for w in workers:
        sch.add_worker(worker=w, info={"workers": 4})
    n_done = int(n * done_fraction)
    start = time.perf_counter()
    for i in range(n):
        status = DONE if i < n_done else "PENDING"
        sch.add_step(worker=workers[i % len(workers)], status=status, **_step_kwargs(i, rng, resources))
    elapsed = time.perf_counter() - start
    return sch, n / elapsed


def bulk_rate(n: int) -> float:
    rng = random.Random(2)
    sch = _scheduler()
    batches = [[_step_kwargs(i, rng) for i in range(j, min(n, j + 500))] for j in range(0, n, 500)]
    start = time.perf_counter()
    for batch in batches:
        sch.add_steps(worker="w0", steps=batch)
    return n / (time.perf_counter() - start)


def measure_get_work(sch: Scheduler, workers: list[str], iterations: int, assistant: bool = False) -> list[float]:
    """Latencies (µs) of get_work calls; each step handed out is reported DONE right away."""
    latencies = []
    for k in range(iterations):
        worker = workers[k % len(workers)]
        start = time.perf_counter()
        reply = sch.get_work(worker=worker, assistant=assistant)
        latencies.append((time.perf_counter() - start) * 1e6)
        step_id = reply["step_id"]
        if step_id is not None:
            sch.add_step(worker=worker, step_id=step_id, status=DONE)
    return latencies


def summary(latencies: list[float]) -> tuple[float, float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.mean(ordered), statistics.median(ordered), p99, ordered[-1]


SCENARIOS: dict[str, Callable[[int], tuple[Scheduler, list[str], float, bool]]] = {}


def scenario(name: str):
    def register(fn):
        SCENARIOS[name] = fn
        return fn
    return register


@scenario("plain")
def _plain(n):
    workers = ["w0"]
    sch, rate = build(n, workers)
    return sch, workers, rate, False


@scenario("resources")
def _resources(n):
    workers = ["w0", "w1", "w2", "w3"]
    sch, rate = build(n, workers, resources={"r": 1})
    for w in workers:
        sch.get_work(worker=w)  # make every worker count as active for the greedy walk
    return sch, workers, rate, False


@scenario("many-done")
def _many_done(n):
    workers = ["w0"]
    sch, rate = build(n, workers, done_fraction=0.99)
    return sch, workers, rate, False


@scenario("assistant")
def _assistant(n):
    sch, rate = build(n, ["w0"])
    return sch, ["helper"], rate, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--iterations", type=int, default=2_000, help="get_work calls per measurement")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--no-gc", action="store_true", help="disable Python's cyclic garbage collector")
    args = parser.parse_args(argv)
    if args.no_gc:
        gc.disable()

    print(f"{'scenario':<10} {'known steps':>11} {'add_step/s':>11} {'add_steps/s':>12} "
          f"{'get_work mean µs':>17} {'median µs':>10} {'p99 µs':>8} {'max µs':>9}")
    for name in args.scenarios:
        for n in args.sizes:
            sch, workers, rate, assistant = SCENARIOS[name](n)
            bulk = bulk_rate(n) if name == "plain" else float("nan")
            gc.collect()
            mean, median, p99, worst = summary(measure_get_work(sch, workers, args.iterations, assistant))
            bulk_text = f"{bulk:>12,.0f}" if bulk == bulk else f"{'-':>12}"
            print(f"{name:<10} {n:>11,} {rate:>11,.0f} {bulk_text} {mean:>17.1f} {median:>10.1f} {p99:>8.1f} "
                  f"{worst:>9.0f}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
