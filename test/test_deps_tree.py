"""Tests of trun.tools.deps_tree: the ``trun-deps-tree`` command and ``print_tree``."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trun
from trun.tools.deps_tree import bcolors, main, print_tree

REPO_ROOT = Path(__file__).resolve().parent.parent

TREE_MODULE = """
    import trun

    class TreeLeaf(trun.Step):
        num = trun.IntParameter()
        secret = trun.Parameter(default="hidden", significant=False)

        def output(self):
            return trun.LocalTarget(f"out/leaf{self.num}.txt")

    class TreeMiddle(trun.Step):
        num = trun.IntParameter()

        def requires(self):
            return [TreeLeaf(num=self.num * 10), TreeLeaf(num=self.num * 10 + 1)]

        def output(self):
            return trun.LocalTarget(f"out/middle{self.num}.txt")

    class TreeRoot(trun.WrapperStep):
        def requires(self):
            return {"one": TreeMiddle(num=1), "two": TreeMiddle(num=2)}
"""


def run_tool(tmp_path: Path, *args: str, env: dict | None = None, module: str = TREE_MODULE) -> subprocess.CompletedProcess:
    (tmp_path / "tree_steps.py").write_text(textwrap.dedent(module))
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]), **(env or {}))
    if "NO_COLOR" not in (env or {}):
        full_env.pop("NO_COLOR", None)
    command = [sys.executable, "-c", "from trun.tools.deps_tree import main; main()", *args]
    return subprocess.run(command, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60)


def test_tree_shows_every_dependency_with_complete_and_pending_markers(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "leaf10.txt").write_text("x")
    (tmp_path / "out" / "middle2.txt").write_text("x")

    result = run_tool(tmp_path, "--module", "tree_steps", "TreeRoot")

    assert result.returncode == 0, result.stderr
    assert result.stdout == textwrap.dedent("""\

        └─--[TreeRoot-{} (PENDING)]
           |--[TreeMiddle-{'num': '1'} (PENDING)]
           |  |--[TreeLeaf-{'num': '10'} (COMPLETE)]
           |  └─--[TreeLeaf-{'num': '11'} (PENDING)]
           └─--[TreeMiddle-{'num': '2'} (COMPLETE)]
              |--[TreeLeaf-{'num': '20'} (PENDING)]
              └─--[TreeLeaf-{'num': '21'} (PENDING)]
        """)


def test_root_parameters_and_class_flags_are_read_from_the_command_line(tmp_path):
    result = run_tool(tmp_path, "--module", "tree_steps", "TreeMiddle", "--num", "3", "--TreeLeaf-secret", "s")

    assert result.returncode == 0, result.stderr
    assert "[TreeMiddle-{'num': '3'} (PENDING)]" in result.stdout
    assert "[TreeLeaf-{'num': '31'} (PENDING)]" in result.stdout


def test_piped_output_has_no_colour_codes(tmp_path):
    result = run_tool(tmp_path, "--module", "tree_steps", "TreeRoot")

    assert "\033[" not in result.stdout


def read_from_terminal(tmp_path: Path, env: dict) -> str:
    (tmp_path / "tree_steps.py").write_text(textwrap.dedent(TREE_MODULE))
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]), **env)
    if "NO_COLOR" not in env:
        full_env.pop("NO_COLOR", None)
    primary, secondary = pty.openpty()
    command = [sys.executable, "-c", "from trun.tools.deps_tree import main; main()",
               "--module", "tree_steps", "TreeMiddle", "--num", "1"]
    process = subprocess.Popen(command, cwd=tmp_path, env=full_env, stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closes when the child exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(primary)
    return b"".join(chunks).decode()


def test_terminal_output_colours_the_markers(tmp_path):
    output = read_from_terminal(tmp_path, {})

    assert bcolors.OKBLUE + "PENDING" + bcolors.ENDC in output


def test_no_color_environment_variable_turns_colours_off_on_a_terminal(tmp_path):
    output = read_from_terminal(tmp_path, {"NO_COLOR": "1"})

    assert "(PENDING)" in output
    assert "\033[" not in output


def test_unknown_step_family_exits_2_with_a_suggestion(tmp_path):
    result = run_tool(tmp_path, "--module", "tree_steps", "TreeRot")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "trun-deps-tree: error: No step TreeRot. Did you mean: TreeRoot" in result.stderr
    assert result.stderr.startswith("usage: trun-deps-tree")


def test_bad_parameter_value_exits_2_naming_the_flag(tmp_path):
    result = run_tool(tmp_path, "--module", "tree_steps", "TreeMiddle", "--num", "one")

    assert result.returncode == 2
    assert "--num" in result.stderr and "integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_flags_of_the_trun_command_are_accepted_and_ignored(tmp_path):
    result = run_tool(tmp_path, "--module", "tree_steps", "TreeMiddle", "--num", "1", "--local-scheduler",
                      "--workers", "3", "--worker-keep-alive")

    assert result.returncode == 0, result.stderr
    assert "[TreeMiddle-{'num': '1'} (PENDING)]" in result.stdout


def test_range_steps_can_be_shown_without_importing_them(tmp_path):
    module = """
        import trun

        class TreeDaily(trun.Step):
            date = trun.DateParameter()

            def complete(self):
                return False
    """
    result = run_tool(tmp_path, "--module", "tree_steps", "RangeDaily", "--of", "TreeDaily",
                      "--start", "2026-01-01", "--stop", "2026-01-03", "--now", "1768000000", module=module)

    assert result.returncode == 0, result.stderr
    assert "[TreeDaily-{'date': '2026-01-01'} (PENDING)]" in result.stdout
    assert "[TreeDaily-{'date': '2026-01-02'} (PENDING)]" in result.stdout


def test_a_failing_complete_is_marked_unknown_and_exits_1(capsys):
    class BrokenCheckForTree(trun.Step):
        def complete(self):
            raise OSError("storage unreachable")

    with pytest.raises(SystemExit) as exit_info:
        main(["BrokenCheckForTree"])

    captured = capsys.readouterr()
    assert exit_info.value.code == 1
    assert "[BrokenCheckForTree-{} (UNKNOWN)]" in captured.out
    assert "BrokenCheckForTree().complete() raised OSError: storage unreachable" in captured.err


# -- print_tree ---------------------------------------------------------------------

def test_print_tree_starts_each_line_with_a_newline_and_honours_indent_and_last():
    class LonelyForTree(trun.Step):
        def complete(self):
            return True

    assert print_tree(LonelyForTree(), indent="  ", last=False, use_color=False) == "\n  |--[LonelyForTree-{} (COMPLETE)]"


def test_print_tree_colours_only_when_asked():
    class ColouredForTree(trun.Step):
        def complete(self):
            return True

    assert print_tree(ColouredForTree(), use_color=True) == (
        "\n└─--[ColouredForTree-{} (" + bcolors.OKGREEN + "COMPLETE" + bcolors.ENDC + ")]")


def test_a_step_required_twice_is_printed_twice_but_checked_once():
    checks = []

    class SharedForTree(trun.Step):
        def complete(self):
            checks.append(self)
            return False

    class LeftForTree(trun.Step):
        def requires(self):
            return SharedForTree()

        def complete(self):
            return False

    class RightForTree(LeftForTree):
        pass

    class DiamondForTree(trun.Step):
        def requires(self):
            return [LeftForTree(), RightForTree()]

        def complete(self):
            return False

    tree = print_tree(DiamondForTree(), use_color=False)

    assert tree.count("[SharedForTree-{} (PENDING)]") == 2
    assert len(checks) == 1


def test_a_very_deep_chain_does_not_exhaust_the_recursion_limit():
    class ChainForTree(trun.Step):
        n = trun.IntParameter()

        def requires(self):
            return ChainForTree(n=self.n - 1) if self.n else []

        def complete(self):
            return False

    tree = print_tree(ChainForTree(n=sys.getrecursionlimit() + 100), use_color=False)

    assert tree.count("\n") == sys.getrecursionlimit() + 101
    assert tree.endswith("└─--[ChainForTree-{'n': '0'} (PENDING)]")


def test_a_dependency_cycle_is_marked_instead_of_followed():
    class CycleForTree(trun.Step):
        n = trun.IntParameter()

        def requires(self):
            return CycleForTree(n=1 - self.n)

        def complete(self):
            return False

    tree = print_tree(CycleForTree(n=0), use_color=False)

    assert tree.splitlines()[-1].endswith("[CycleForTree-{'n': '0'} (dependency cycle)]")
    assert tree.count("\n") == 3


def test_steps_without_outputs_do_not_warn(recwarn):
    class OutputlessForTree(trun.Step):
        pass

    assert "(PENDING)" in print_tree(OutputlessForTree(), use_color=False)
    assert not [w for w in recwarn if "without outputs" in str(w.message)]
