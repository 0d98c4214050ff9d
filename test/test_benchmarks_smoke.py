"""Keep the benchmark harness from rotting: run its trun side at the tiniest size, check its arithmetic.

No timing is asserted (the numbers belong to ``python benchmarks/harness.py``
on an idle machine); what is checked is that every workload shape runs to
completion with the in-process scheduler and with a real ``trund``, that the
results file and the Markdown report have the expected shape, and that the
plot can be drawn from them. Luigi is never involved.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "benchmarks"
HARNESS = BENCH_DIR / "harness.py"
SHAPES = ("fanin", "chain", "layered", "rerun", "workers2")

sys.path.insert(0, str(BENCH_DIR))
from workloads import report  # noqa: E402


def _run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    """One harness run, trun only, every shape on both schedulers at 3 steps (layers 2 wide)."""
    output = tmp_path_factory.mktemp("bench") / "results.json"
    done = _run(HARNESS, "--no-luigi", "--no-rpc", "--sizes", "3", "--layer-width", "2", "--output", output)
    results = json.loads(output.read_text()) if output.exists() else {}
    return done, results


def test_harness_trun_side_exits_zero_and_writes_results(tiny_run):
    done, results = tiny_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert results["meta"]["luigi_version"] is None
    assert results["import_s"]["trun"] > 0


def test_harness_measures_every_shape_on_both_schedulers(tiny_run):
    _, results = tiny_run
    measured = {(m["shape"], m["backend"]): m for m in results["measurements"]}
    assert set(measured) == {(shape, backend) for shape in SHAPES for backend in ("local", "central")}
    assert all(m["impl"] == "trun" and m["status"] == "ok" for m in measured.values()), measured


def test_harness_counts_steps_of_each_shape(tiny_run):
    _, results = tiny_run
    steps = {m["shape"]: m["steps"] for m in results["measurements"]}
    # fan-in shapes: 3 leaves + root; layered: one layer of 2 (3 // 2) + root.
    assert steps == {"fanin": 4, "chain": 3, "layered": 3, "rerun": 4, "workers2": 4}


def test_instruction_counter_needs_two_different_sizes():
    done = _run(BENCH_DIR / "count_instructions.py", "--sizes", "500", "500")
    assert done.returncode == 2
    assert "two different positive sizes" in done.stderr


def test_harness_reports_scheduler_memory_only_for_the_central_scheduler(tiny_run):
    _, results = tiny_run
    for m in results["measurements"]:
        assert m["worker_rss_mb"] > 0
        if m["backend"] == "central":
            assert m["scheduler_rss_mb"] > 0
        else:
            assert m["scheduler_rss_mb"] is None


def test_harness_prints_markdown_table_on_stdout(tiny_run):
    done, _ = tiny_run
    assert "| workload | scheduler | steps | trun s |" in done.stdout
    assert "| fan-in, 2 workers | trund / luigid | 4 |" in done.stdout


def test_harness_report_option_reprints_a_results_file(tiny_run, tmp_path):
    _, results = tiny_run
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(results))
    done = _run(HARNESS, "--report", saved)
    assert done.returncode == 0, done.stderr
    assert "| chain | in-process | 3 |" in done.stdout


def test_plot_draws_png_from_results(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    _, results = tiny_run
    saved, png = tmp_path / "saved.json", tmp_path / "plot.png"
    saved.write_text(json.dumps(results))
    done = _run(BENCH_DIR / "plot.py", saved, "-o", png)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_rejects_missing_results_file_naming_harness(tmp_path):
    done = _run(BENCH_DIR / "plot.py", tmp_path / "absent.json", "-o", tmp_path / "plot.png")
    assert done.returncode == 2
    assert "benchmarks/harness.py" in done.stderr


def test_harness_rejects_non_positive_size():
    done = _run(HARNESS, "--no-luigi", "--sizes", "0")
    assert done.returncode == 2
    assert "--sizes must be positive" in done.stderr


def test_harness_rejects_unknown_shape():
    done = _run(HARNESS, "--no-luigi", "--shapes", "diamond")
    assert done.returncode == 2
    assert "invalid choice: 'diamond'" in done.stderr


def test_fit_exponent_of_linear_growth_is_one():
    points = [(n, n * 2e-6) for n in (1_000, 10_000, 100_000)]
    assert report.fit_exponent(points) == pytest.approx(1.0)


def test_fit_exponent_of_quadratic_growth_is_two():
    points = [(n, (n / 1_000) ** 2) for n in (1_000, 5_000, 20_000)]
    assert report.fit_exponent(points) == pytest.approx(2.0)


def test_fit_exponent_ignores_points_outside_the_range():
    points = [(100, 50.0), (1_000, 1.0), (10_000, 10.0)]
    assert report.fit_exponent(points) == pytest.approx(1.0)


def test_fit_exponent_needs_two_sizes():
    assert report.fit_exponent([(1_000, 1.0)]) is None


def test_predict_seconds_follows_the_last_two_points():
    assert report.predict_seconds([(1_000, 1.0), (2_000, 4.0)], 4_000) == pytest.approx(16.0)


def test_predict_seconds_never_assumes_sublinear_growth():
    assert report.predict_seconds([(1_000, 1.0), (2_000, 1.0)], 4_000) == pytest.approx(2.0)


def test_predict_seconds_without_points_is_none():
    assert report.predict_seconds([], 1_000) is None


def test_markdown_report_shows_luigi_to_trun_ratio():
    base = {"shape": "fanin", "backend": "local", "size": 1_000, "steps": 1_001, "status": "ok",
            "worker_rss_mb": 30.0, "scheduler_rss_mb": None}
    measurements = [{**base, "impl": "trun", "wall_s": 0.5, "us_per_step": 499.5},
                    {**base, "impl": "luigi", "wall_s": 50.0, "us_per_step": 49_950.0}]
    text = report.markdown_report({"meta": {}, "measurements": measurements,
                                   "exponents": report.exponents(measurements)})
    assert "| fan-in | in-process | 1,001 | 0.50 | 500 | 30 | (worker) | 50.00 | 49,950 | 30 | (worker) | 100× |" in text


def test_summary_rows_leave_out_sizes_luigi_never_reached():
    base = {"shape": "chain", "backend": "local", "status": "ok", "worker_rss_mb": 30.0}
    measurements = [{**base, "impl": "trun", "size": n, "steps": n, "wall_s": n / 1e4, "us_per_step": 100.0}
                    for n in (1_000, 5_000, 100_000)]
    measurements.append({**base, "impl": "luigi", "size": 1_000, "steps": 1_000, "wall_s": 3.0,
                         "us_per_step": 3_000.0})
    header, row = report.summary_rows({"measurements": measurements, "exponents": []})
    assert header[2:7] == ["trun 1,000", "trun 5,000", "trun 100,000", "Luigi 1,000", "Luigi/trun"]
    assert row[2:7] == ["0.10", "0.50", "10.00", "3.00", "30×"]


def test_markdown_report_explains_skipped_sizes():
    skipped = {"impl": "luigi", "shape": "chain", "backend": "central", "size": 100_000, "steps": 100_000,
               "status": "skipped", "note": "skipped: extrapolated ≈9,000 s > budget 120 s"}
    text = report.markdown_report({"meta": {}, "measurements": [skipped], "exponents": []})
    assert "| chain | trund / luigid | 100,000 | – |" in text
    assert "luigi chain trund / luigid 100,000 steps: skipped: extrapolated" in text


def test_exponents_include_the_largest_fan_in_whose_steps_exceed_the_range():
    base = {"impl": "trun", "shape": "fanin", "backend": "local", "status": "ok"}
    measurements = [{**base, "size": n, "steps": n + 1, "wall_s": n / 1e4} for n in (1_000, 10_000, 100_000)]
    (row,) = report.exponents(measurements)
    assert (row["points"], row["to_steps"]) == (3, 100_001)
    assert row["exponent"] == pytest.approx(1.0, abs=1e-3)
