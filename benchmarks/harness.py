"""trun and Luigi side by side: the same workloads, the same machine, the same run.

Run from the repository root::

    python benchmarks/harness.py            # the whole suite (an hour or two)
    python benchmarks/harness.py --quick    # small sizes, about a minute
    python benchmarks/harness.py --no-luigi --sizes 100 1000 --shapes fanin chain

For every workload shape (``fanin``, ``chain``, ``layered``, ``rerun``,
``workers2``; see ``workloads/shapes.py``), every scheduler (in-process, and a
real ``trund`` / ``luigid`` started on a free 127.0.0.1 port and stopped after
each measurement) and every size, each implementation is measured in a fresh
process (``workloads/run_one.py``): wall time of ``build``, microseconds per
step, peak RSS of the worker process and of the scheduler process. Luigi
3.8.1 runs from its own virtualenv, ``benchmarks/.venv-luigi``, which the
harness creates on first use (``luigi_side/venv.py``).

A size is skipped, with a note, when the sizes measured before it predict that
it would take longer than the implementation's time budget (Luigi: 120 s, as
its scheduler grows quadratically; trun: 600 s). Then come the growth
exponents (log-log least squares from 1,000 to 100,000 steps), the ``trund``
RPC micro-benchmark (``bench_trund_rpc.py``), import times and the
plain-Python floor. Everything is written to ``benchmarks/results/latest.json``
(``--output``) and printed as Markdown on stdout; progress goes to stderr.
``python benchmarks/plot.py`` draws the plot from that file.

Hazards: timings are only comparable within one run on one otherwise idle
machine; the load average at the start is recorded in the results. A full run
keeps a 2-core machine busy for an hour or two.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from luigi_side.venv import (  # noqa: E402
    DEFAULT_VENV,
    LUIGI_VERSION,
    LuigiUnavailable,
    ensure_luigi_venv,
    venv_luigid,
)
from workloads import report  # noqa: E402
from workloads.daemons import SchedulerDaemon, clean_environment  # noqa: E402

RUN_ONE = BENCH_DIR / "workloads" / "run_one.py"
RPC_BENCH = BENCH_DIR / "bench_trund_rpc.py"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.json"

SHAPES = ("fanin", "chain", "layered", "rerun", "workers2")
BACKENDS = ("local", "central")
FULL_SIZES = (100, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
QUICK_SIZES = (100, 500)
FULL_BUDGETS = {"trun": 600.0, "luigi": 120.0}
QUICK_BUDGETS = {"trun": 15.0, "luigi": 10.0}


class HarnessError(Exception):
    """A harness option or input is wrong; the message says which and what is expected."""


def steps_in(shape: str, size: int, layer_width: int) -> int:
    """How many steps the ``shape`` graph has at ``size`` (mirrors ``workloads/shapes.py``)."""
    if shape in ("fanin", "rerun", "workers2"):
        return size + 1
    if shape == "chain":
        return size
    if shape == "layered":
        return max(1, size // layer_width) * layer_width + 1
    raise HarnessError(f"unknown workload shape {shape!r}; expected one of {', '.join(SHAPES)}")


@dataclass
class Implementation:
    """How to run one side: its interpreter and how to start its central scheduler."""

    name: str
    python: str
    budget_s: float
    luigid: Path | None = None

    def daemon(self, workdir: Path) -> SchedulerDaemon:
        if self.name == "luigi":
            assert self.luigid is not None
            return SchedulerDaemon.luigid(self.luigid, workdir)
        return SchedulerDaemon.trund(workdir, self.python)


@dataclass
class Plan:
    """What one harness run measures."""

    shapes: list[str]
    backends: list[str]
    sizes: list[int]
    impls: list[Implementation]
    layer_width: int
    rpc_known: list[int]
    rpc_seconds: float
    measurements: list[dict[str, Any]] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _tail_text(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return _tail_text(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


def run_measurement(impl: Implementation, shape: str, size: int, backend: str, layer_width: int,
                    timeout_s: float) -> dict[str, Any]:
    """Measure one workload in a fresh process (and a fresh scheduler daemon for ``central``)."""
    steps = steps_in(shape, size, layer_width)
    base = {"impl": impl.name, "shape": shape, "backend": backend, "size": size, "steps": steps}
    with tempfile.TemporaryDirectory(prefix=f"trun-bench-{impl.name}-") as tmp:
        workdir = Path(tmp)
        result_path, log_path = workdir / "result.json", workdir / "run.log"
        command = [impl.python, str(RUN_ONE), "--impl", impl.name, "--shape", shape, "--size", str(size),
                   "--layer-width", str(layer_width), "--result", str(result_path)]
        daemon = impl.daemon(workdir / "scheduler") if backend == "central" else None
        try:
            if daemon is not None:
                daemon.start()
                command += ["--scheduler-url", daemon.url]
            with open(log_path, "wb") as output:
                subprocess.run(command, cwd=workdir, env=clean_environment(), stdout=output,
                               stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
            scheduler_mb = daemon.peak_rss_mb() if daemon is not None else None
        except subprocess.TimeoutExpired:
            return {**base, "status": "timeout", "note": f"no result after {timeout_s:.0f} s"}
        except RuntimeError as exc:  # the daemon did not start
            return {**base, "status": "error", "note": str(exc)}
        finally:
            if daemon is not None:
                daemon.stop()
        if not result_path.exists():
            return {**base, "status": "error", "note": f"the run left no result: {_tail(log_path)}"}
        measured = json.loads(result_path.read_text())
    measured["scheduler_rss_mb"] = scheduler_mb
    if measured.get("error"):
        return {**measured, "status": "error", "note": measured["error"]}
    return {**measured, "status": "ok"}


def _describe(m: dict[str, Any]) -> str:
    what = f"{m['impl']:5} {m['shape']:8} {m['backend']:7} {m['steps']:>7,} steps:"
    if m["status"] != "ok":
        return f"{what} {m['status']} ({m.get('note', '')})"
    scheduler = f", scheduler {m['scheduler_rss_mb']:.0f} MB" if m.get("scheduler_rss_mb") else ""
    return (f"{what} {m['wall_s']:8.2f} s  {m['us_per_step']:9.1f} µs/step  "
            f"worker {m['worker_rss_mb']:.0f} MB{scheduler}")


def run_workloads(plan: Plan, on_measured: Callable[[], None] = lambda: None) -> None:
    """Measure every size, shape and scheduler, skipping sizes predicted to exceed a budget.

    Sizes come outermost, so a run cut short still covers every shape up to
    some size; ``on_measured`` is called after each measurement (the harness
    saves the results so far).
    """
    series = [(shape, backend, impl) for shape in plan.shapes for backend in plan.backends for impl in plan.impls]
    points: dict[tuple[str, str, str], list[tuple[int, float]]] = {(s, b, i.name): [] for s, b, i in series}
    stopped: dict[tuple[str, str, str], str] = {}
    for size in plan.sizes:
        for shape, backend, impl in series:
            key = (shape, backend, impl.name)
            steps = steps_in(shape, size, plan.layer_width)
            base = {"impl": impl.name, "shape": shape, "backend": backend, "size": size, "steps": steps}
            if key in stopped:
                plan.measurements.append({**base, "status": "skipped", "note": stopped[key]})
                continue
            predicted = report.predict_seconds(points[key], steps)
            if predicted is not None and predicted > impl.budget_s:
                last_steps, last_s = points[key][-1]
                stopped[key] = (f"skipped: extrapolated from {last_s:.1f} s at {last_steps:,} steps, "
                                f"≈{predicted:,.0f} s at {steps:,} > budget {impl.budget_s:.0f} s")
                m = {**base, "status": "skipped", "note": stopped[key]}
            else:
                timeout_s = max(60.0, 2.5 * impl.budget_s)
                m = run_measurement(impl, shape, size, backend, plan.layer_width, timeout_s)
                if m["status"] == "error":
                    # Once more before giving up on the series: a daemon that lost a race
                    # for its port must not cost every larger size.
                    log(_describe(m) + " — retrying once")
                    m = run_measurement(impl, shape, size, backend, plan.layer_width, timeout_s)
                if m["status"] == "ok":
                    points[key].append((steps, m["wall_s"]))
                else:
                    stopped[key] = f"not run: {m['status']} at {steps:,} steps"
            plan.measurements.append(m)
            log(_describe(m))
            on_measured()


def measure_import(impl: Implementation, repeats: int = 3) -> float | None:
    """Best wall time of ``import X; X.Step`` (``X.Task``) in a fresh process, in seconds."""
    attribute = "Step" if impl.name == "trun" else "Task"
    code = (f"import time; t = time.perf_counter(); import {impl.name}; {impl.name}.{attribute}; "
            f"{impl.name}.build; print(time.perf_counter() - t)")
    best = None
    # An empty directory as cwd: `python -c` puts the cwd first on sys.path, and the system
    # temporary directory holds a `trun/` (and `luigi/`) pid-lock directory that would be
    # imported as a namespace package instead of the library.
    with tempfile.TemporaryDirectory(prefix="trun-bench-import-") as empty:
        for _ in range(repeats):
            done = subprocess.run([impl.python, "-c", code], capture_output=True, text=True,
                                  env=clean_environment(), cwd=empty)
            if done.returncode != 0:
                log(f"import of {impl.name} failed: {_tail_text(done.stderr)}")
                return None
            seconds = float(done.stdout.strip().splitlines()[-1])
            best = seconds if best is None else min(best, seconds)
    return best


def measure_floor(steps: int = 100_000) -> float:
    """Microseconds per step of plain Python doing a fan-in's bookkeeping: check, then record, completion."""
    done: set[str] = set()
    started = time.perf_counter()
    for i in range(steps):
        key = f"leaf-{i}"
        if key not in done:
            done.add(key)
    if "root" not in done:
        done.add("root")
    return (time.perf_counter() - started) / (steps + 1) * 1e6


def run_rpc_benchmark(known: list[int], seconds: float, timeout_s: float) -> dict[str, Any]:
    """Run ``bench_trund_rpc.py`` (owned by the trund work) and collect its rows."""
    if not RPC_BENCH.exists():
        return {"note": f"{RPC_BENCH.name} is not present; no RPC figures"}
    with tempfile.TemporaryDirectory(prefix="trun-bench-rpc-") as tmp:
        rows_path = Path(tmp) / "rpc.json"
        command = [sys.executable, str(RPC_BENCH), "--known", *map(str, known), "--seconds", str(seconds),
                   "--json", str(rows_path)]
        log(f"rpc: {' '.join(command[1:])}")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                                  env=clean_environment(), cwd=REPO_ROOT)
        except subprocess.TimeoutExpired:
            return {"note": f"{RPC_BENCH.name} did not finish within {timeout_s:.0f} s"}
        if done.returncode != 0 or not rows_path.exists():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"note": f"{RPC_BENCH.name} failed (exit {done.returncode}): {last[0]}"}
        rows = json.loads(rows_path.read_text())
    for row in rows:
        log(f"rpc: journal {'on ' if row.get('journal') else 'off'} known {row['known']:>7,} "
            f"{row['method']:9} {row['clients']} client(s): {row['calls_per_second']:,.0f} calls/s")
    return {"rows": rows, "command": " ".join(["python", "benchmarks/" + RPC_BENCH.name, *command[2:-2]])}


def _git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT)
    return done.stdout.strip() or None if done.returncode == 0 else None


def _trun_version() -> str:
    namespace: dict[str, Any] = {}
    exec((REPO_ROOT / "trun" / "__version__.py").read_text(), namespace)
    return str(namespace.get("__version__", "?"))


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def write_results(results: dict[str, Any], output: Path) -> None:
    """Write ``results`` as JSON, atomically (a reader never sees half a file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".tmp")
    partial.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    os.replace(partial, output)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/harness.py", description=__doc__.split("\n\n")[0],
        epilog="Results: benchmarks/results/latest.json; plot: python benchmarks/plot.py")
    parser.add_argument("--quick", action="store_true",
                        help=f"sizes {' and '.join(map(str, QUICK_SIZES))}, small budgets, short RPC run")
    parser.add_argument("--sizes", type=int, nargs="+", help="sizes to measure (leaves for fan-in)")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, help="workload shapes (default: all)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, help="schedulers (default: both)")
    parser.add_argument("--no-luigi", action="store_true", help="measure trun only")
    parser.add_argument("--luigi-venv", type=Path, default=DEFAULT_VENV, help="where Luigi's virtualenv lives")
    parser.add_argument("--luigi-budget", type=float, help="skip Luigi sizes predicted to take longer (s)")
    parser.add_argument("--trun-budget", type=float, help="skip trun sizes predicted to take longer (s)")
    parser.add_argument("--layer-width", type=int, default=50, help="steps per layer of the layered DAG")
    parser.add_argument("--no-rpc", action="store_true", help="skip the trund RPC micro-benchmark")
    parser.add_argument("--rpc-known", type=int, nargs="+", help="known steps for the RPC benchmark")
    parser.add_argument("--rpc-seconds", type=float, help="length of each RPC measurement")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    parser.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: print the Markdown report of an earlier results file")
    parser.add_argument("--rst", action="store_true",
                        help="with --report: print the summary table as reStructuredText (for the docs)")
    args = parser.parse_args(argv)
    if args.sizes and min(args.sizes) < 1:
        parser.error(f"--sizes must be positive numbers of steps, got {min(args.sizes)}")
    if args.layer_width < 1:
        parser.error(f"--layer-width must be at least 1, got {args.layer_width}")
    return args


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # Unwind like Ctrl-C, so that the running measurement and its scheduler daemon are stopped too.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if args.report:
        try:
            results = json.loads(args.report.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--report needs a results file written by this harness "
                             f"(e.g. {DEFAULT_OUTPUT.relative_to(REPO_ROOT)}): {exc}") from None
        meta = results.get("meta", {})
        # Recomputed, so that a results file benefits from fixes to the fit.
        results["exponents"] = report.exponents(results.get("measurements", []),
                                                low=meta.get("fit_from_steps", 1_000),
                                                high=meta.get("fit_to_steps", 100_000))
        print(report.rst_rows(report.summary_rows(results)) if args.rst else report.markdown_report(results))
        return 0
    budgets = QUICK_BUDGETS if args.quick else FULL_BUDGETS
    impls = [Implementation("trun", sys.executable, args.trun_budget or budgets["trun"])]
    luigi_note = None
    if not args.no_luigi:
        try:
            python = ensure_luigi_venv(args.luigi_venv)
            impls.append(Implementation("luigi", str(python), args.luigi_budget or budgets["luigi"],
                                        venv_luigid(args.luigi_venv)))
        except LuigiUnavailable as exc:
            luigi_note = str(exc)
            log(f"Luigi side not run: {exc}")
    plan = Plan(shapes=list(args.shapes or SHAPES), backends=list(args.backends or BACKENDS),
                sizes=sorted(set(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))), impls=impls,
                layer_width=args.layer_width,
                rpc_known=list(args.rpc_known or ([1_000] if args.quick else [1_000, 100_000])),
                rpc_seconds=args.rpc_seconds or (0.5 if args.quick else 3.0))
    started = time.monotonic()
    command = "python benchmarks/harness.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                " " + " ".join(argv if argv is not None else sys.argv[1:]))
    # The bar is set on 1,000–100,000 steps; quick runs stop far below, so fit what they have.
    fit_from = min(plan.sizes) if args.quick else 1_000
    results: dict[str, Any] = {
        "meta": {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": command,
                 "machine": _machine(), "load_average_at_start": list(os.getloadavg()),
                 "git_commit": _git_commit(), "trun_version": _trun_version(),
                 "pythonpath": os.environ.get("PYTHONPATH"),
                 "luigi_version": LUIGI_VERSION if len(impls) > 1 else None, "luigi_note": luigi_note,
                 "quick": args.quick, "sizes": plan.sizes, "layer_width": plan.layer_width,
                 "budgets_s": {impl.name: impl.budget_s for impl in impls},
                 "fit_from_steps": fit_from, "fit_to_steps": 100_000, "complete": False},
        "import_s": {impl.name: measure_import(impl) for impl in impls},
        "floor_us_per_step": measure_floor(),
        "measurements": plan.measurements,
    }

    def save() -> None:
        results["exponents"] = report.exponents(plan.measurements, low=fit_from)
        results["meta"]["duration_s"] = round(time.monotonic() - started, 1)
        write_results(results, args.output)

    try:
        if not args.no_rpc:
            # Before the workloads: a run cut short should still have these figures.
            results["rpc"] = run_rpc_benchmark(plan.rpc_known, plan.rpc_seconds,
                                               timeout_s=300 if args.quick else 3600)
            save()
        run_workloads(plan, on_measured=save)
        results["meta"]["complete"] = True
    except KeyboardInterrupt:
        log("interrupted: reporting the measurements made so far")
        results["meta"]["interrupted"] = True
    save()
    print(report.markdown_report(results))
    log(f"results written to {args.output} in {results['meta']['duration_s']:.0f} s")
    failed = [m for m in plan.measurements if m["status"] in ("error", "timeout")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
