"""The example workflows run end to end, as a user runs them: the ``trun`` command in a shell."""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_trun(args, cwd, env=None, timeout=120):
    full_env = dict(os.environ, PYTHONPATH=str(cwd), **(env or {}))
    return subprocess.run([sys.executable, "-m", "trun", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path):
    for name in ("my_steps.py", "hello_world.py", "wordcount.py", "dynamic_requirements.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path


def make_dumps(workdir, days):
    today = datetime.date.today()
    for i in range(days):
        day = today - datetime.timedelta(i)
        path = workdir / "data" / "dump" / f"{day:%Y-%m-%d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{day.day}\n")


def test_seed_example_with_no_dumps_runs_nothing_and_reports_missing_data(workdir):
    result = run_trun(["--module", "my_steps", "RunAll", "--local-scheduler", "--no-progress"], workdir)
    assert result.returncode == 0, result.stderr
    assert "missing external dependencies" in result.stderr
    assert not (workdir / "data" / "aggregated").exists()


def test_seed_example_runs_every_aggregation_once_then_nothing(workdir):
    make_dumps(workdir, 23)
    first = run_trun(["--module", "my_steps", "RunAll", "--local-scheduler", "--no-progress"], workdir)
    assert first.returncode == 0, first.stderr
    aggregated = sorted((workdir / "data" / "aggregated").iterdir())
    assert len(aggregated) == 30
    assert "31 ran successfully" in first.stderr  # 30 aggregations and the RunAll wrapper
    second = run_trun(["--module", "my_steps", "RunAll", "--local-scheduler", "--no-progress"], workdir)
    assert second.returncode == 0, second.stderr
    assert "ran successfully" not in second.stderr
    assert "complete ones were encountered" in second.stderr


def test_seed_aggregation_sums_its_window(workdir):
    make_dumps(workdir, 5)
    today = datetime.date.today()
    result = run_trun(["--module", "my_steps", "AggregationStep", "--date", str(today), "--window", "3",
                       "--local-scheduler", "--no-progress"], workdir)
    assert result.returncode == 0, result.stderr
    expected = sum((today - datetime.timedelta(i)).day for i in range(3))
    assert (workdir / "data" / "aggregated" / f"{today}-3.txt").read_text() == f"{expected}\n"


def test_hello_world_writes_its_greeting(workdir):
    result = run_trun(["--module", "hello_world", "HelloWorld", "--name", "trun", "--local-scheduler"], workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "hello_trun.txt").read_text() == "Hello, trun!\n"


def test_wordcount_merges_counts_of_all_files(workdir):
    (workdir / "a.txt").write_text("to be or not to be\n")
    (workdir / "b.txt").write_text("to trun\n")
    result = run_trun(["--module", "wordcount", "WordCount", "--paths", '["a.txt", "b.txt"]',
                       "--local-scheduler"], workdir)
    assert result.returncode == 0, result.stderr
    lines = (workdir / "wordcount.tsv").read_text().splitlines()
    assert lines[0] == "to\t3"
    assert "trun\t1" in lines


def test_dynamic_requirements_builds_the_parts_it_discovers(workdir):
    result = run_trun(["--module", "dynamic_requirements", "Assemble", "--local-scheduler"], workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "assembled.txt").read_text() == "".join(f"content of part{i}\n" for i in range(3))


@pytest.mark.slow
def test_seed_example_two_identical_commands_against_trund_never_run_a_step_twice(workdir, trund):
    make_dumps(workdir, 23)
    marker_env = {"TRUN_EXAMPLE_DIR": str(workdir / "data")}
    args = ["--module", "my_steps", "RunAll", "--scheduler-url", trund.url, "--no-lock", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(workdir), **marker_env)
    procs = [subprocess.Popen([sys.executable, "-m", "trun", *args], cwd=workdir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    ran = 0
    for _, err in outputs:
        for line in err.splitlines():
            if "ran successfully" in line and line.strip().startswith("*"):
                ran += int(line.strip().split()[1])
    assert ran == 31, outputs  # 30 aggregations + RunAll, each by exactly one of the two workers
