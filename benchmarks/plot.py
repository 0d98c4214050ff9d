"""Draw the benchmark results as a log-log plot of time against number of steps, trun next to Luigi.

Run from the repository root after ``python benchmarks/harness.py``::

    python benchmarks/plot.py [RESULTS_JSON] [-o doc/_static/performance.png]

One panel per scheduler (in-process, central ``trund``/``luigid``); one colour
per workload shape; trun in solid lines with dots, Luigi dashed with crosses.
Grey guides show linear and quadratic growth. The default input is
``benchmarks/results/latest.json``, the default output the PNG that
``doc/performance.rst`` shows.

Hazards: needs matplotlib, which is a benchmarking tool only and not a
dependency of trun (``pip install matplotlib``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from workloads.report import BACKEND_LABELS, SHAPE_LABELS, series, shape_label  # noqa: E402

DEFAULT_RESULTS = BENCH_DIR / "results" / "latest.json"
DEFAULT_PNG = REPO_ROOT / "doc" / "_static" / "performance.png"
IMPL_STYLES = {"trun": {"linestyle": "-", "marker": "o"}, "luigi": {"linestyle": "--", "marker": "x"}}
IMPL_NAMES = {"trun": "trun", "luigi": "Luigi"}


def _guides(axes: Any, low: float, high: float, anchor: float) -> None:
    """Grey lines of slope 1 and 2 through ``(low, anchor)``: what linear and quadratic look like."""
    for exponent, label in ((1, "linear"), (2, "quadratic")):
        axes.plot([low, high], [anchor, anchor * (high / low) ** exponent], color="0.8", linewidth=1,
                  linestyle=":", zorder=0)
        axes.annotate(label, (high, anchor * (high / low) ** exponent), color="0.6", fontsize=7,
                      ha="right", va="bottom")


def plot(results: dict[str, Any], output: Path) -> Path:
    """Draw ``results`` (the harness's JSON) into the PNG ``output``; return its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is wanted in CI
    import matplotlib.pyplot as plt

    measurements = results.get("measurements", [])
    if not any(m.get("status") == "ok" for m in measurements):
        raise ValueError("the results hold no successful measurement to plot; run benchmarks/harness.py first")
    meta = results.get("meta", {})
    width = meta.get("layer_width", 50)
    backends = [b for b in BACKEND_LABELS if any(m["backend"] == b for m in measurements)]
    figure, panels = plt.subplots(1, len(backends), figsize=(6 * len(backends), 5), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axes, backend in zip(panels[0], backends):
        all_points = []
        for index, shape in enumerate(SHAPE_LABELS):
            for impl, style in IMPL_STYLES.items():
                points = series(measurements, impl, shape, backend)
                if not points:
                    continue
                all_points += points
                axes.plot([n for n, _ in points], [t for _, t in points], color=colours[index % len(colours)],
                          label=f"{IMPL_NAMES[impl]}: {shape_label(shape, width)}", markersize=4, **style)
        if all_points:
            low = min(n for n, _ in all_points)
            high = max(n for n, _ in all_points)
            anchor = min(t for n, t in all_points if n == low)
            if high > low:
                _guides(axes, low, high, anchor)
            # The quadratic guide would otherwise stretch the axis far above the data.
            times = [t for _, t in all_points]
            axes.set_ylim(min(times) / 2, max(times) * 3)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_title(f"{BACKEND_LABELS[backend]} scheduler" if backend == "local"
                       else f"central scheduler ({BACKEND_LABELS[backend]})")
        axes.set_xlabel("steps in the graph")
        axes.grid(True, which="major", linewidth=0.5, color="0.9")
        axes.legend(fontsize=7, loc="upper left")
    panels[0][0].set_ylabel("wall time of build() (s)")
    figure.suptitle(f"trun {meta.get('trun_version', '')} vs Luigi {meta.get('luigi_version') or ''} — "
                    f"{meta.get('machine', '')}", fontsize=9)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/plot.py", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS,
                        help="results JSON written by benchmarks/harness.py (default: %(default)s)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_PNG, help="PNG to write (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read the results file {args.results} ({exc}); "
                     "run `python benchmarks/harness.py` first to produce it")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parser.error("matplotlib is needed to draw the plot: pip install matplotlib")
    try:
        written = plot(results, args.output)
    except ValueError as exc:
        parser.error(str(exc))
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
