"""Benchmark: how fast the visualiser shows a big step list and a big dependency graph.

A fresh ``trund`` (real process, loopback port, no state kept) is filled through
the bulk ``add_steps`` RPC, then headless Chromium (Debian's ``/usr/bin/chromium``
driven by Playwright) loads the page. Measured, median of ``--repeat`` fresh
page loads:

* **list**: time to first render of the step list -- from navigation start to
  the first page of rows and the status counts on screen (the app's
  ``trun:listRendered`` performance mark) -- for each ``--steps`` size
  (default 10,000 and 100,000), plus the ``step_list_page`` RPC time alone;
* **graph**: time to first render of a ``--graph-nodes`` node graph (default
  1,000; layered, ~3 dependencies per step), from navigation start to the
  ``trun:graphRendered`` mark, and the part of it spent fetching, laying out
  and drawing; then the mean frame time while zooming and panning it
  (60 wheel and 60 drag steps, one per animation frame).

Run from the repository root::

    python benchmarks/bench_visualiser.py
    python benchmarks/bench_visualiser.py --steps 10000 --graph-nodes 1000 --repeat 3 --json out.json

Hazards: timings depend on the machine and its load (the numbers in the docs
come from a 2-core machine); Chromium runs headless with software rendering,
so frame times are pessimistic compared with a desktop browser.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from trun.rpc import RemoteScheduler  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FAMILIES = ["Extract", "Transform", "Load", "Report", "Aggregate", "Publish", "Cleanup", "Validate"]
STATUSES = ["DONE"] * 6 + ["PENDING"] * 3 + ["FAILED"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Trund:
    """A throw-away trund child process."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / f"trund-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from trun.cmdline import trund; trund()", "--address", "127.0.0.1",
             "--port", str(self.port), "--state-path", str(workdir / f"state-{self.port}")],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(urllib.request.Request(self.url + "/", method="HEAD"), timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("trund did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def fill_list(url: str, n: int) -> None:
    """n steps over a few families, mostly DONE, some PENDING and FAILED."""
    remote = RemoteScheduler(url)
    rng = random.Random(1)
    batch = []
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        batch.append({"step_id": f"{family}_{i}", "family": family, "status": rng.choice(STATUSES),
                      "params": {"date": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", "i": str(i)}})
        if len(batch) == 2000:
            remote.add_steps(worker="bench", steps=batch)
            batch = []
    if batch:
        remote.add_steps(worker="bench", steps=batch)


def fill_graph(url: str, nodes: int) -> str:
    """A layered graph of ``nodes`` steps under one root; returns the root's id."""
    rng = random.Random(2)
    layers = max(2, round(nodes ** 0.5 / 3))
    ids = [f"G_{i}" for i in range(nodes)]
    per_layer = max(1, (nodes - 1) // layers)
    layer_of = [0] + [1 + min(layers - 1, (i - 1) // per_layer) for i in range(1, nodes)]
    by_layer: dict[int, list[int]] = {}
    for i, layer in enumerate(layer_of):
        by_layer.setdefault(layer, []).append(i)
    deps: dict[int, set[int]] = {i: set() for i in range(nodes)}
    for i in range(1, nodes):
        above = by_layer[layer_of[i] - 1]
        # Every step is needed by 1 to 3 steps of the layer above: all are reachable from the root.
        for parent in rng.sample(above, min(len(above), rng.randint(1, 3))):
            deps[parent].add(i)
    steps = [{"step_id": ids[i], "family": f"Layer{layer_of[i]}", "deps": [ids[j] for j in sorted(deps[i])],
              "status": "DONE" if rng.random() < 0.6 else "PENDING", "params": {"n": str(i)}}
             for i in range(nodes)]
    RemoteScheduler(url).add_steps(worker="bench", steps=steps)
    return ids[0]


def mark_time(page: Any, name: str) -> float:
    return page.evaluate(f"performance.getEntriesByName('trun:{name}')[0].startTime")


def measure_list(browser: Any, url: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/static/visualiser/index.html#tab=steps")
        page.wait_for_selector("body[data-list-rendered]", timeout=60_000)
        times.append(mark_time(page, "listRendered"))
        context.close()
    return times


def measure_rpc(url: str, repeat: int) -> list[float]:
    remote = RemoteScheduler(url)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        remote.step_list_page(limit=100)
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure_graph(browser: Any, url: str, root: str, repeat: int) -> dict[str, Any]:
    first, inner, frames = [], [], []
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/static/visualiser/index.html#tab=graph&stepId={root}")
        page.wait_for_selector("body[data-graph-rendered]", timeout=60_000)
        first.append(mark_time(page, "graphRendered"))
        inner.append(page.evaluate("performance.getEntriesByName('trun:graphRendered')[0].detail.ms"))
        nodes = page.locator("#graph-canvas g.node").count()
        frames.append(page.evaluate("""async () => {
            const svg = document.querySelector('#graph-canvas svg');
            const box = svg.getBoundingClientRect();
            const frame = () => new Promise(requestAnimationFrame);
            await frame();
            const started = performance.now();
            for (let i = 0; i < 60; i++) {
                svg.dispatchEvent(new WheelEvent('wheel', {deltaY: i < 30 ? -40 : 40, clientX: box.x + box.width / 2,
                                                           clientY: box.y + box.height / 2, bubbles: true, cancelable: true}));
                await frame();
            }
            const opts = {bubbles: true, pointerId: 1, button: 0, isPrimary: true};
            svg.dispatchEvent(new PointerEvent('pointerdown', {...opts, clientX: box.x + 100, clientY: box.y + 100}));
            for (let i = 0; i < 60; i++) {
                svg.dispatchEvent(new PointerEvent('pointermove', {...opts, clientX: box.x + 100 + 5 * i, clientY: box.y + 100 + 2 * i}));
                await frame();
            }
            svg.dispatchEvent(new PointerEvent('pointerup', {...opts, clientX: box.x + 400, clientY: box.y + 220}));
            return (performance.now() - started) / 120;
        }"""))
        context.close()
    return {"nodes": nodes, "first_render_ms": first, "fetch_layout_draw_ms": inner, "frame_ms": frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--graph-nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("needs Playwright for Python: pip install playwright (never `playwright install`)", file=sys.stderr)
        return 2
    if not os.path.exists(CHROMIUM):
        print(f"needs {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"list": {}, "graph": None}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in args.steps:
            trund = Trund(Path(tmp))
            try:
                fill_list(trund.url, n)
                rpc = measure_rpc(trund.url, args.repeat)
                shown = measure_list(browser, trund.url, args.repeat)
                results["list"][n] = {"first_render_ms": shown, "step_list_page_rpc_ms": rpc}
                print(f"list of {n:,} steps: first render {statistics.median(shown):.0f} ms (median of {args.repeat}), "
                      f"step_list_page RPC {statistics.median(rpc):.0f} ms", file=sys.stderr)
            finally:
                trund.stop()
        trund = Trund(Path(tmp))
        try:
            root = fill_graph(trund.url, args.graph_nodes)
            graph = measure_graph(browser, trund.url, root, args.repeat)
            results["graph"] = graph
            print(f"graph of {graph['nodes']:,} nodes: first render {statistics.median(graph['first_render_ms']):.0f} ms "
                  f"(fetch+layout+draw {statistics.median(graph['fetch_layout_draw_ms']):.0f} ms), "
                  f"pan/zoom {statistics.median(graph['frame_ms']):.1f} ms per frame", file=sys.stderr)
        finally:
            trund.stop()
        browser.close()
    print("| measurement | median |\n| --- | --- |")
    for n, r in results["list"].items():
        print(f"| step list, {n:,} steps: time to first render | {statistics.median(r['first_render_ms']):.0f} ms |")
        print(f"| step list, {n:,} steps: `step_list_page` RPC | {statistics.median(r['step_list_page_rpc_ms']):.0f} ms |")
    g = results["graph"]
    print(f"| graph, {g['nodes']:,} nodes: time to first render | {statistics.median(g['first_render_ms']):.0f} ms |")
    print(f"| graph, {g['nodes']:,} nodes: fetch + layout + draw | {statistics.median(g['fetch_layout_draw_ms']):.0f} ms |")
    print(f"| graph, {g['nodes']:,} nodes: pan/zoom frame time | {statistics.median(g['frame_ms']):.1f} ms |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
