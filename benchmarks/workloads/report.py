"""Numbers out of the measurements: growth exponents, cut-off predictions, the Markdown report.

Pure functions over the result dictionaries the harness collects (the same
ones it writes to ``benchmarks/results/latest.json``), so they can be tested
and re-run on an old results file without measuring anything.

* :func:`fit_exponent`: least-squares slope of log(time) against log(steps),
  by default over the points from 1,000 to 100,000 steps: 1.0 is linear
  growth, 2.0 quadratic.
* :func:`predict_seconds`: how long the next, larger size would take, from the
  sizes measured so far; the harness skips a size whose prediction exceeds its
  time budget (Luigi's quadratic growth makes 100,000 steps a matter of hours).
* :func:`markdown_report`: the tables printed at the end of a run.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

SHAPE_LABELS = {
    "fanin": "fan-in",
    "chain": "chain",
    "layered": "layered ×{width}",
    "rerun": "re-run, complete",
    "workers2": "fan-in, 2 workers",
}
BACKEND_LABELS = {"local": "in-process", "central": "trund / luigid"}
IMPLS = ("trun", "luigi")


def fit_exponent(points: Iterable[tuple[float, float]], low: float = 1_000,
                 high: float = 100_000) -> float | None:
    """Slope of the log-log least-squares line through the ``(steps, seconds)`` points in [low, high].

    None when fewer than two distinct sizes fall in the range.
    """
    chosen = [(math.log(n), math.log(t)) for n, t in points if low <= n <= high and t > 0]
    if len({x for x, _ in chosen}) < 2:
        return None
    mean_x = sum(x for x, _ in chosen) / len(chosen)
    mean_y = sum(y for _, y in chosen) / len(chosen)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in chosen)
    variance = sum((x - mean_x) ** 2 for x, _ in chosen)
    return covariance / variance


def predict_seconds(points: Sequence[tuple[float, float]], steps: float,
                    first_guess_exponent: float = 1.5) -> float | None:
    """Expected wall time at ``steps`` from the ``(steps, seconds)`` measured so far, smallest first.

    The growth exponent is the one between the last two points, never taken
    below 1 (timer noise at small sizes must not promise sub-linear growth);
    with a single point, ``first_guess_exponent`` stands in for it. None
    without any point.
    """
    if not points:
        return None
    last_steps, last_seconds = points[-1]
    exponent = first_guess_exponent
    if len(points) >= 2:
        prev_steps, prev_seconds = points[-2]
        if prev_steps != last_steps and prev_seconds > 0 and last_seconds > 0:
            exponent = max(1.0, math.log(last_seconds / prev_seconds) / math.log(last_steps / prev_steps))
    return last_seconds * (steps / last_steps) ** exponent


def series(measurements: Iterable[dict[str, Any]], impl: str, shape: str,
           backend: str) -> list[tuple[int, float]]:
    """The successful ``(steps, wall_s)`` points of one implementation, shape and backend, by size."""
    return sorted((m["steps"], m["wall_s"]) for m in measurements
                  if m["impl"] == impl and m["shape"] == shape and m["backend"] == backend
                  and m.get("status") == "ok")


def exponents(measurements: list[dict[str, Any]], low: float = 1_000,
              high: float = 100_000) -> list[dict[str, Any]]:
    """One growth exponent per (implementation, shape, backend) present in ``measurements``.

    ``low`` and ``high`` bound the size N of the workload (a fan-in of N = 100,000
    leaves has 100,001 steps and belongs in the fit); the fit itself is over steps.
    """
    keys = sorted({(m["impl"], m["shape"], m["backend"]) for m in measurements})
    rows = []
    for impl, shape, backend in keys:
        in_range = [m for m in measurements if low <= m["size"] <= high]
        points = series(in_range, impl, shape, backend)
        rows.append({"impl": impl, "shape": shape, "backend": backend,
                     "exponent": fit_exponent(points, 0, float("inf")),
                     "from_steps": points[0][0] if points else None,
                     "to_steps": points[-1][0] if points else None,
                     "points": len(points)})
    return rows


def _seconds(m: dict[str, Any] | None) -> str:
    if m is None:
        return "–"
    if m.get("status") == "ok":
        return f"{m['wall_s']:.2f}"
    return m.get("status", "?")


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(trun: dict[str, Any] | None, luigi: dict[str, Any] | None) -> str:
    if not trun or not luigi or trun.get("status") != "ok" or luigi.get("status") != "ok":
        return "–"
    ratio = luigi["wall_s"] / trun["wall_s"] if trun["wall_s"] > 0 else float("inf")
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


def _ok(m: dict[str, Any] | None, key: str) -> float | None:
    return m.get(key) if m and m.get("status") == "ok" else None


def shape_label(shape: str, layer_width: int) -> str:
    """The human name of a workload shape."""
    return SHAPE_LABELS.get(shape, shape).format(width=layer_width)


def measurement_table(measurements: list[dict[str, Any]], layer_width: int) -> str:
    """One row per workload, scheduler and size: trun and Luigi side by side."""
    by_key: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    order: list[tuple[str, str, int]] = []
    for m in measurements:
        key = (m["shape"], m["backend"], m["steps"])
        if key not in by_key:
            by_key[key] = {}
            order.append(key)
        by_key[key][m["impl"]] = m
    lines = [
        "| workload | scheduler | steps | trun s | trun µs/step | trun worker MB | trun scheduler MB "
        "| Luigi s | Luigi µs/step | Luigi worker MB | Luigi scheduler MB | Luigi/trun |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    order.sort(key=lambda k: (*_shape_backend_order(k[:2]), k[2]))
    for shape, backend, steps in order:
        trun, luigi = by_key[(shape, backend, steps)].get("trun"), by_key[(shape, backend, steps)].get("luigi")
        cells = [shape_label(shape, layer_width), BACKEND_LABELS.get(backend, backend), f"{steps:,}"]
        for m in (trun, luigi):
            scheduler_mb = _ok(m, "scheduler_rss_mb")
            cells += [_seconds(m), _number(_ok(m, "us_per_step")), _number(_ok(m, "worker_rss_mb")),
                      "(worker)" if backend == "local" and m and m.get("status") == "ok"
                      else _number(scheduler_mb)]
        cells.append(_ratio(trun, luigi))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shape_backend_order(key: tuple[str, str]) -> tuple[int, int]:
    shapes, backends = list(SHAPE_LABELS), list(BACKEND_LABELS)
    shape, backend = key
    return (shapes.index(shape) if shape in shapes else len(shapes),
            backends.index(backend) if backend in backends else len(backends))


def exponent_table(rows: list[dict[str, Any]], layer_width: int) -> str:
    """Growth exponents per workload and scheduler, trun next to Luigi."""
    cell: dict[tuple[str, str, str], dict[str, Any]] = {(r["impl"], r["shape"], r["backend"]): r for r in rows}
    keys = sorted({(r["shape"], r["backend"]) for r in rows}, key=_shape_backend_order)
    lines = ["| workload | scheduler | trun exponent | Luigi exponent |", "| --- | --- | ---: | ---: |"]
    for shape, backend in keys:
        cells = [shape_label(shape, layer_width), BACKEND_LABELS.get(backend, backend)]
        for impl in IMPLS:
            r = cell.get((impl, shape, backend))
            if r is None or r["exponent"] is None:
                cells.append("–")
            else:
                cells.append(f"{r['exponent']:.2f} ({r['from_steps']:,}–{r['to_steps']:,}, {r['points']} sizes)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rpc_table(rows: list[dict[str, Any]]) -> str:
    """The ``trund`` RPC micro-benchmark (rows of ``bench_trund_rpc.py --json``)."""
    lines = ["| state journal | known steps | method | clients | calls/s |", "| --- | ---: | --- | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {'on' if r.get('journal') else 'off'} | {r['known']:,} | {r['method']} "
                     f"| {r['clients']} | {r['calls_per_second']:,.0f} |")
    return "\n".join(lines)


def get_work_latency_ratio(rows: list[dict[str, Any]]) -> float | None:
    """Latency of one client's ``get_work`` with the most known steps over that with the fewest."""
    single = [r for r in rows if r["method"] == "get_work" and r["clients"] == 1 and r["calls_per_second"] > 0
              and r.get("journal", True)]
    if len({r["known"] for r in single}) < 2:
        return None
    fewest = min(single, key=lambda r: r["known"])
    most = max(single, key=lambda r: r["known"])
    return fewest["calls_per_second"] / most["calls_per_second"]


SUMMARY_SIZES = (1_000, 5_000, 100_000)


def summary_rows(results: dict[str, Any], sizes: Sequence[int] = SUMMARY_SIZES) -> list[list[str]]:
    """The condensed table of the docs: per workload and scheduler, times at a few sizes and exponents.

    The first row is the header. ``sizes`` not measured in this run are left
    out (a run without any of them shows its three largest sizes instead), and
    so are Luigi's columns for sizes Luigi never reached. Times are seconds,
    "–" where a size was not measured; the ratio is Luigi/trun at the largest
    size both ran.
    """
    measurements = results.get("measurements", [])
    measured = sorted({m["size"] for m in measurements})
    sizes = [n for n in sizes if n in measured] or measured[-3:]
    luigi_sizes = [n for n in sizes if any(m["impl"] == "luigi" and m["size"] == n and m.get("status") == "ok"
                                           for m in measurements)]
    width = results.get("meta", {}).get("layer_width", 50)
    fitted = {(r["impl"], r["shape"], r["backend"]): r["exponent"] for r in results.get("exponents", [])}
    found = {(m["impl"], m["shape"], m["backend"], m["size"]): m for m in measurements}
    keys = sorted({(m["shape"], m["backend"]) for m in measurements}, key=_shape_backend_order)
    header = ["workload", "scheduler"]
    header += [f"trun {n:,}" for n in sizes] + [f"Luigi {n:,}" for n in luigi_sizes]
    header += ["Luigi/trun", f"trun µs/step at {max(sizes, default=0):,}", "exponent trun", "exponent Luigi"]
    rows = [header]
    for shape, backend in keys:
        trun = [found.get(("trun", shape, backend, n)) for n in sizes]
        luigi = [found.get(("luigi", shape, backend, n)) for n in sizes]
        both = [(t, m) for t, m in zip(trun, luigi) if _ok(t, "wall_s") is not None and _ok(m, "wall_s") is not None]
        luigi = [found.get(("luigi", shape, backend, n)) for n in luigi_sizes]
        exponents = [fitted.get((impl, shape, backend)) for impl in IMPLS]
        rows.append([shape_label(shape, width), BACKEND_LABELS.get(backend, backend),
                     *[_number(_ok(m, "wall_s"), 2) for m in trun + luigi],
                     _ratio(*both[-1]) if both else "–",
                     _number(_ok(trun[-1], "us_per_step") if trun else None),
                     *["–" if e is None else f"{e:.2f}" for e in exponents]])
    return rows


def markdown_rows(rows: list[list[str]]) -> str:
    """``rows`` (header first) as a Markdown table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def rst_rows(rows: list[list[str]]) -> str:
    """``rows`` (header first) as a reStructuredText ``list-table``."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        lines.append("   * - " + row[0])
        lines += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines)


def markdown_report(results: dict[str, Any]) -> str:
    """The whole report: measurements, exponents, RPC, import times, notes."""
    meta = results.get("meta", {})
    width = meta.get("layer_width", 50)
    parts = [f"## trun {meta.get('trun_version', '?')} and Luigi {meta.get('luigi_version') or '(not run)'}"
             f" — {meta.get('date', '')}",
             "",
             f"Command: `{meta.get('command', '')}` on {meta.get('machine', '')}."
             + (" **Interrupted: partial results.**" if meta.get("interrupted") else ""),
             "",
             "### Summary (seconds at N leaves / steps; Luigi/trun at the largest N both ran)",
             "",
             markdown_rows(summary_rows(results)),
             "",
             "### All measurements",
             "",
             measurement_table(results.get("measurements", []), width),
             "",
             f"### Growth exponent of time against steps (log-log least squares, "
             f"{meta.get('fit_from_steps', 1_000):,}–{meta.get('fit_to_steps', 100_000):,} steps)",
             "",
             exponent_table(results.get("exponents", []), width)]
    rpc = results.get("rpc") or {}
    if rpc.get("rows"):
        parts += ["", "### trund RPC micro-benchmark (`benchmarks/bench_trund_rpc.py`)", "",
                  rpc_table(rpc["rows"])]
        ratio = get_work_latency_ratio(rpc["rows"])
        if ratio is not None:
            parts += ["", f"get_work latency, most vs fewest known steps (1 client): {ratio:.2f}×"]
    elif rpc.get("note"):
        parts += ["", f"trund RPC micro-benchmark: {rpc['note']}"]
    imports = results.get("import_s") or {}
    if imports:
        parts += ["", "Import and first use (`import X; X.Step`/`X.Task`, best of 3 fresh processes): "
                  + ", ".join(f"{impl} {_number(seconds, 3)} s" for impl, seconds in imports.items())]
    if results.get("floor_us_per_step") is not None:
        parts += ["", f"Plain-Python floor (a loop checking and recording completion of each step): "
                      f"{results['floor_us_per_step']:.2f} µs/step"]
    notes = [m for m in results.get("measurements", []) if m.get("note")]
    if notes:
        parts += ["", "Notes:"]
        parts += [f"- {m['impl']} {m['shape']} {BACKEND_LABELS.get(m['backend'], m['backend'])} "
                  f"{m['steps']:,} steps: {m['note']}" for m in notes]
    return "\n".join(parts) + "\n"
