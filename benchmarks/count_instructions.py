"""Instructions per step of an in-process workload, counted by Valgrind: a before/after check that a busy machine cannot blur.

Wall-clock timings on a shared or throttled machine wander by tens of per cent
from one run to the next, which hides the few per cent a hot-path change is
worth. Callgrind counts the instructions the interpreter executes instead: the
same code, inputs and environment give the same count to within a fraction of
a per cent, whatever else the machine is doing.

Each count runs ``workloads/run_one.py`` (in process, as the harness does) under
``valgrind --tool=callgrind`` at two sizes; the difference divided by the
difference in steps is the cost of one more step, without start-up and import.
A plain run first writes the bytecode caches, and ``PYTHONHASHSEED=0`` fixes
the hash order, so both counts see the same interpreter work.

Run from the repository root (Debian's ``valgrind`` package)::

    python benchmarks/count_instructions.py                       # fan-in, 2,000 and 8,000 leaves
    python benchmarks/count_instructions.py --shape chain --sizes 1000 4000
    python benchmarks/count_instructions.py --trund --sizes 1000 3000

With ``--trund`` the worker talks to a real ``trund`` on a free loopback port
and the count is that of ``trund`` alone (the worker runs outside Valgrind):
what a change to the server, its request handling or its journal is worth per
step, at about 100 times the run's usual time.

Compare two commits by running it in a checkout of each. Hazards: under
Valgrind the run is about 50 times slower (a minute for the defaults); it
counts instructions, not time, so cache misses and system calls (``fork`` with
``--workers 2``) are not weighed: use it for the in-process shapes, and the
harness for wall-clock time.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN_ONE = HERE / "workloads" / "run_one.py"
SHAPES = ("fanin", "chain", "layered", "rerun")


def _environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(HERE.parent))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the imports must come from the caches both times
    return env


def count(shape: str, size: int, layer_width: int) -> tuple[int, int]:
    """Instructions executed by one in-process run of ``shape`` at ``size`` (start-up included), and its steps."""
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        command = [sys.executable, str(RUN_ONE), "--impl", "trun", "--shape", shape, "--size", str(size),
                   "--layer-width", str(layer_width), "--result", result]
        subprocess.run(command, env=_environment(), check=True, stdout=subprocess.DEVNULL)  # writes the caches
        done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
                              env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        measured = json.loads(Path(result).read_text()) if os.path.exists(result) else {}
    if done.returncode != 0 or found is None or measured.get("error"):
        tail = measured.get("error") or "\n".join(done.stderr.splitlines()[-5:])
        raise SystemExit(f"count_instructions: the run of {shape} at {size} failed under valgrind:\n{tail}")
    return int(found.group(1)), measured["steps"]


def count_trund(shape: str, size: int, layer_width: int) -> tuple[int, int]:
    """Instructions executed by a ``trund`` serving one run of ``shape`` at ``size`` (its start and stop included)."""
    sys.path.insert(0, str(HERE / "workloads"))
    from daemons import SchedulerDaemon

    environment = _environment()
    os.environ.update(PYTHONHASHSEED=environment["PYTHONHASHSEED"], PYTHONPATH=environment["PYTHONPATH"])
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        for valgrind in ([], ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]):
            # The first run writes the bytecode caches of both sides.
            daemon = SchedulerDaemon.trund(Path(tmp) / ("counted" if valgrind else "warm-up"))
            daemon.command[:0] = valgrind
            with daemon.start(timeout=600):
                subprocess.run([sys.executable, str(RUN_ONE), "--impl", "trun", "--shape", shape, "--size", str(size),
                                "--layer-width", str(layer_width), "--result", result, "--scheduler-url", daemon.url],
                               env=environment, check=True, stdout=subprocess.DEVNULL)
                daemon.stop(grace=600)  # the final snapshot, slow under Valgrind
        found = re.search(r"Collected : (\d+)", daemon.log_path.read_text(errors="replace"))
        measured = json.loads(Path(result).read_text())
    if found is None or measured.get("error"):
        raise SystemExit(f"count_instructions: trund's run of {shape} at {size} failed under valgrind: "
                         f"{measured.get('error') or daemon.log_tail()}")
    return int(found.group(1)), measured["steps"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="fanin")
    parser.add_argument("--sizes", type=int, nargs=2, default=[2000, 8000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--layer-width", type=int, default=50)
    parser.add_argument("--trund", action="store_true",
                        help="count a real trund serving the run instead of the in-process run")
    args = parser.parse_args(argv)
    small, large = sorted(args.sizes)
    if small < 1 or small == large:
        parser.error(f"--sizes needs two different positive sizes, not {args.sizes[0]} and {args.sizes[1]}")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed: apt-get install -y valgrind")
    counter = count_trund if args.trund else count
    (few, few_steps), (many, many_steps) = (counter(args.shape, size, args.layer_width) for size in (small, large))
    if many_steps == few_steps:
        parser.error(f"{args.shape} has {few_steps} steps at both sizes: choose sizes further apart")
    per_step = (many - few) / (many_steps - few_steps)
    print(f"{args.shape}, {'trund' if args.trund else 'in process'}: {per_step:,.0f} instructions per step "
          f"({few:,} for {few_steps:,} steps, {many:,} for {many_steps:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
