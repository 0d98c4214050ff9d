"""How long creating a step takes: 100,000 distinct instances of small step classes.

Run: ``python benchmarks/bench_step_instantiation.py``.  Prints microseconds
per instantiation (instance-cache misses, so every call builds a new step and
its ``step_id``) for a few shapes of step, plus the cost of a cache hit.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trun  # noqa: E402
from trun.step_register import Register  # noqa: E402

N = 100_000


class TwoParams(trun.Step):
    a = trun.IntParameter()
    b = trun.Parameter()


class WithDefaults(trun.Step):
    a = trun.IntParameter()
    b = trun.Parameter(default="x")
    c = trun.IntParameter(default=3)


class Dated(trun.Step):
    date = trun.DateParameter()
    n = trun.IntParameter()


def measure(label: str, make) -> float:
    Register.clear_instance_cache()
    start = time.perf_counter()
    for i in range(N):
        make(i)
    elapsed = time.perf_counter() - start
    per_call = elapsed / N * 1e6
    print(f"{label:<52} {per_call:7.2f} us/step  ({elapsed:.3f} s for {N:,})")
    return per_call


def main() -> None:
    import datetime

    base = datetime.date(2000, 1, 1)
    dates = [base + datetime.timedelta(days=i) for i in range(N)]
    measure("TwoParams(a=i, b='x')  [kwargs, cache miss]", lambda i: TwoParams(a=i, b="x"))
    measure("TwoParams(i, 'x')      [positional, cache miss]", lambda i: TwoParams(i, "x"))
    measure("WithDefaults(a=i)      [2 defaults, cache miss]", lambda i: WithDefaults(a=i))
    measure("Dated(date=d, n=1)     [DateParameter, cache miss]", lambda i: Dated(date=dates[i], n=1))
    TwoParams(a=1, b="x")
    start = time.perf_counter()
    for _ in range(N):
        TwoParams(a=1, b="x")
    print(f"{'TwoParams(a=1, b=x)    [cache hit]':<52} {(time.perf_counter() - start) / N * 1e6:7.2f} us/step")


if __name__ == "__main__":
    main()
