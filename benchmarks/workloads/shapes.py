"""The benchmark workloads, written once for trun and for Luigi.

trun's public surface is Luigi's under a mechanical rename, so the same step
classes serve both: ``BENCH_IMPL=trun`` (the default) builds them on
``trun.Step``, ``BENCH_IMPL=luigi`` on ``luigi.Task``. The module is read at
import time from the environment, so a child process started with ``spawn``
rebuilds the same classes.

Every step is trivial: ``complete()`` is a look-up and ``run()`` records
completion, so what a measurement sees is the library's own overhead. The
record is a module-level set, or marker files in ``BENCH_MARKER_DIR`` when set:
a step that runs in a child process (``--workers 2``) must leave a trace the
parent can see, which a set in the child's memory is not.

Shapes (``prepare_workload(shape, size)`` then ``build_workload(shape, size)``):

* ``fanin``: one root requiring ``size`` leaves (``size + 1`` steps);
* ``chain``: ``size`` steps, each requiring the previous one;
* ``layered``: ``size // width`` layers of ``width`` steps, each step requiring
  the whole previous layer, and one root requiring the last layer (one root, so
  that the graph is walked once: ``build`` walks it again for every root);
* ``rerun``: a fan-in whose steps are all complete already, every one of them
  given to ``build`` as a root (what a cron re-run of a range costs);
* ``workers2``: the fan-in run by two worker processes.

Hazards: only stdlib and the library under test may be imported here, since the
Luigi side runs in its own virtualenv without trun. The registry of step
classes is global, so one process measures one workload.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

IMPL = os.environ.get("BENCH_IMPL", "trun")
if IMPL not in ("trun", "luigi"):
    raise ValueError(f"BENCH_IMPL must be 'trun' or 'luigi', not {IMPL!r}")

lib: Any = importlib.import_module(IMPL)
StepBase: Any = lib.Step if IMPL == "trun" else lib.Task

SHAPES = ("fanin", "chain", "layered", "rerun", "workers2")
DEFAULT_LAYER_WIDTH = 50

_done: set[str] = set()
runs = 0  # run() calls in this process (children of --workers 2 count in their own copy)
_marker_dir = os.environ.get("BENCH_MARKER_DIR") or None


def is_done(key: str) -> bool:
    """Whether the step recorded as ``key`` has run (or was marked complete beforehand)."""
    if _marker_dir:
        return os.path.exists(os.path.join(_marker_dir, key))
    return key in _done


def mark_done(key: str) -> None:
    """Record the step ``key`` as complete."""
    if _marker_dir:
        with open(os.path.join(_marker_dir, key), "w"):
            pass
    else:
        _done.add(key)


def ran(key: str) -> None:
    """Called by ``run()``: count the run, then record ``key`` as complete."""
    global runs
    runs += 1
    mark_done(key)


def count_done() -> int:
    """How many steps are recorded as complete."""
    if _marker_dir:
        return len(os.listdir(_marker_dir))
    return len(_done)


class FanLeaf(StepBase):
    i = lib.IntParameter()

    def complete(self) -> bool:
        return is_done(f"leaf-{self.i}")

    def run(self) -> None:
        ran(f"leaf-{self.i}")


class FanRoot(StepBase):
    n = lib.IntParameter()

    def requires(self) -> list[FanLeaf]:
        return [FanLeaf(i=i) for i in range(self.n)]

    def complete(self) -> bool:
        return is_done(f"root-{self.n}")

    def run(self) -> None:
        ran(f"root-{self.n}")


class ChainLink(StepBase):
    i = lib.IntParameter()

    def requires(self) -> list[ChainLink]:
        return [ChainLink(i=self.i - 1)] if self.i > 0 else []

    def complete(self) -> bool:
        return is_done(f"link-{self.i}")

    def run(self) -> None:
        ran(f"link-{self.i}")


class LayerNode(StepBase):
    layer = lib.IntParameter()
    i = lib.IntParameter()
    width = lib.IntParameter()

    def requires(self) -> list[LayerNode]:
        if self.layer == 0:
            return []
        return [LayerNode(layer=self.layer - 1, i=j, width=self.width) for j in range(self.width)]

    def complete(self) -> bool:
        return is_done(f"node-{self.layer}-{self.i}")

    def run(self) -> None:
        ran(f"node-{self.layer}-{self.i}")


def prepare_workload(shape: str, size: int) -> None:
    """Set up what must exist before the measured run: the completed graph of ``rerun``."""
    if shape == "rerun":
        for i in range(size):
            mark_done(f"leaf-{i}")
        mark_done(f"root-{size}")


class LayerTop(StepBase):
    layers = lib.IntParameter()
    width = lib.IntParameter()

    def requires(self) -> list[LayerNode]:
        return [LayerNode(layer=self.layers - 1, i=j, width=self.width) for j in range(self.width)]

    def complete(self) -> bool:
        return is_done(f"top-{self.layers}")

    def run(self) -> None:
        ran(f"top-{self.layers}")


@dataclass
class Workload:
    """What one measurement builds: the roots, how many steps the graph has, and how to run it."""

    roots: list[Any]
    steps: int
    workers: int = 1
    expected_runs: int = -1  # -1: every step runs; 0: nothing may run (re-run of a complete graph)


def build_workload(shape: str, size: int, layer_width: int = DEFAULT_LAYER_WIDTH) -> Workload:
    """The roots and step count of ``shape`` at ``size``; see the module docstring for the shapes."""
    if size < 1:
        raise ValueError(f"size must be a positive number of steps, not {size}")
    if shape == "fanin":
        return Workload([FanRoot(n=size)], size + 1)
    if shape == "workers2":
        return Workload([FanRoot(n=size)], size + 1, workers=2)
    if shape == "chain":
        return Workload([ChainLink(i=size - 1)], size)
    if shape == "layered":
        layers = max(1, size // layer_width)
        return Workload([LayerTop(layers=layers, width=layer_width)], layers * layer_width + 1)
    if shape == "rerun":
        roots = [FanRoot(n=size)] + [FanLeaf(i=i) for i in range(size)]
        return Workload(roots, size + 1, expected_runs=0)
    raise ValueError(f"unknown workload shape {shape!r}; expected one of {', '.join(SHAPES)}")
