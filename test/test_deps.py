"""Tests of trun.tools.deps: the ``trun-deps`` command, ``find_deps`` and output descriptions."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trun
from trun.mock import MockTarget
from trun.tools.deps import dfs_paths, find_deps, get_step_output_description, get_step_requires, main

REPO_ROOT = Path(__file__).resolve().parent.parent

DEPS_MODULE = """
    import trun

    class Daily(trun.ExternalStep):
        date = trun.DateParameter()

        def output(self):
            return trun.LocalTarget(self.date.strftime("/data/daily/%Y-%m-%d.tsv"))

    class Clean(trun.Step):
        date = trun.DateParameter()

        def requires(self):
            return Daily(self.date)

        def output(self):
            return {"rows": trun.LocalTarget(self.date.strftime("/data/clean/%Y-%m-%d.tsv")),
                    "errors": trun.LocalTarget(self.date.strftime("/data/clean/%Y-%m-%d.err"))}

    class Lookup(trun.ExternalStep):
        def output(self):
            return trun.LocalTarget("/data/lookup.tsv")

    class Aggregate(trun.Step):
        date = trun.DateParameter()

        def requires(self):
            return [Clean(self.date), Lookup()]

        def output(self):
            return trun.LocalTarget(self.date.strftime("/data/aggregate/%Y-%m-%d.tsv"))
"""


def run_deps(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "deps_steps.py").write_text(textwrap.dedent(DEPS_MODULE))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))
    command = [sys.executable, "-c", "from trun.tools.deps import main; main()", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_upstream_family_limits_the_list_to_steps_on_paths_to_it(tmp_path):
    result = run_deps(tmp_path, "--module", "deps_steps", "Aggregate", "--date", "2026-01-01",
                      "--upstream-family", "Daily")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "   STEP: Aggregate(date=2026-01-01)\n"
        "                       : [FileSystem] /data/aggregate/2026-01-01.tsv\n"
        "   STEP: Clean(date=2026-01-01)\n"
        "                       : [FileSystem] /data/clean/2026-01-01.tsv\n"
        "                       : [FileSystem] /data/clean/2026-01-01.err\n"
        "   STEP: Daily(date=2026-01-01)\n"
        "                       : [FileSystem] /data/daily/2026-01-01.tsv\n")


def test_without_upstream_family_every_dependency_is_listed(tmp_path):
    result = run_deps(tmp_path, "--module", "deps_steps", "Aggregate", "--date", "2026-01-01")

    assert result.returncode == 0, result.stderr
    listed = [line.split("STEP: ")[1] for line in result.stdout.splitlines() if "STEP: " in line]
    assert listed == ["Aggregate(date=2026-01-01)", "Clean(date=2026-01-01)", "Daily(date=2026-01-01)", "Lookup()"]


def test_unknown_upstream_family_exits_2_with_a_suggestion(tmp_path):
    result = run_deps(tmp_path, "--module", "deps_steps", "Aggregate", "--date", "2026-01-01",
                      "--upstream-family", "Daly")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "trun-deps: error: --upstream-family Daly: No step Daly. Did you mean: Daily" in result.stderr


def test_upstream_family_not_reached_prints_nothing_and_says_so(tmp_path):
    result = run_deps(tmp_path, "--module", "deps_steps", "Clean", "--date", "2026-01-01",
                      "--upstream-family", "Lookup")

    assert result.returncode == 0
    assert result.stdout == ""
    assert "no dependency path leads from Clean(date=2026-01-01) to a Lookup step" in result.stderr


def test_missing_root_parameter_exits_2_naming_it(tmp_path):
    result = run_deps(tmp_path, "--module", "deps_steps", "Aggregate")

    assert result.returncode == 2
    assert "'date'" in result.stderr
    assert "Traceback" not in result.stderr


def test_main_reads_the_given_arguments_in_process(capsys):
    class SourceForDepsMain(trun.ExternalStep):
        def output(self):
            return MockTarget("/mock/source")

    class SinkForDepsMain(trun.Step):
        def requires(self):
            return SourceForDepsMain()

    main(["SinkForDepsMain", "--upstream-family", "SourceForDepsMain"])

    assert capsys.readouterr().out == ("   STEP: SinkForDepsMain()\n"
                                       "   STEP: SourceForDepsMain()\n"
                                       "                       : [FileSystem] /mock/source\n")


# -- find_deps and friends ---------------------------------------------------------

def make_graph():
    class Source(trun.ExternalStep):
        pass

    class Side(trun.Step):
        pass

    class Middle(trun.Step):
        n = trun.IntParameter()

        def requires(self):
            return Source()

    class Top(trun.Step):
        def requires(self):
            return [Middle(n=1), Middle(n=2), Side()]

    return Source, Side, Middle, Top


def test_find_deps_returns_the_steps_between_the_root_and_the_upstream_family():
    Source, Side, Middle, Top = make_graph()

    assert find_deps(Top(), "Source") == {Top(), Middle(n=1), Middle(n=2), Source()}


def test_find_deps_without_family_returns_everything_reachable():
    Source, Side, Middle, Top = make_graph()

    assert find_deps(Top(), None) == {Top(), Middle(n=1), Middle(n=2), Source(), Side()}


def test_find_deps_stays_fast_when_paths_multiply():
    class Layer(trun.Step):
        depth = trun.IntParameter()
        side = trun.IntParameter(default=0)

        def requires(self):
            if self.depth == 0:
                return []
            return [Layer(depth=self.depth - 1, side=0), Layer(depth=self.depth - 1, side=1)]

    # 2**40 distinct paths from the top to the bottom, but only 81 steps.
    found = find_deps(Layer(depth=40), "Layer")

    assert len(found) == 81


def test_dfs_paths_yields_each_step_once_starting_with_the_path_taken():
    Source, Side, Middle, Top = make_graph()

    yielded = list(dfs_paths(Middle(n=1), "Source", path=[Top(), Middle(n=1)]))

    assert yielded == [Top(), Middle(n=1), Source()]


def test_get_step_requires_is_the_set_of_direct_requirements():
    Source, Side, Middle, Top = make_graph()

    assert get_step_requires(Top()) == {Middle(n=1), Middle(n=2), Side()}


@pytest.mark.parametrize("target, description", [
    (trun.LocalTarget("/data/x.tsv"), "[FileSystem] /data/x.tsv"),
    (MockTarget("/mock/y"), "[FileSystem] /mock/y"),
    (object(), "to be determined"),
])
def test_output_descriptions_name_the_kind_of_target(target, description):
    assert get_step_output_description(target) == description
