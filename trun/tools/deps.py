"""``trun-deps``: list the steps on the dependency paths from a step down to an upstream family, with their outputs.

It reads the same command line as ``trun`` plus ``--upstream-family``, and runs
nothing. Suppose ``Aggregate`` (downstream) depends, through a few steps, on
``Daily`` (upstream), and a bug in ``Aggregate`` is fixed: ::

    trun-deps --module daily_steps Aggregate --date 2026-01-01 --upstream-family Daily

prints every step lying on a path from ``Aggregate`` to a ``Daily`` step,
each followed by its outputs, so they can be removed and recomputed. Without
``--upstream-family`` every dependency of the root step is listed::

       STEP: Aggregate(date=2026-01-01)
                           : [FileSystem] /data/aggregate/2026-01-01.tsv

In Python, :func:`find_deps` returns the same steps as a set.

Outputs are described as ``[FileSystem] path`` (any file-system target),
``[S3] path``, ``[SSH] host:path``, ``[DB] host:table`` (the contrib targets of
those names) or ``to be determined``.

Hazard: ``requires()`` of every step reached is called (``complete()`` is not).
Importing this module registers the ``upstream`` configuration class, whose
``--upstream-family`` flag the command line then accepts.
"""
from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from trun.parameter import OptionalParameter
from trun.step import Config, Step, flatten
from trun.target import FileSystemTarget
from trun.tools.deps_tree import _exit_with_usage, _root_step_from_cmdline

__all__ = ["upstream", "get_step_requires", "dfs_paths", "find_deps", "find_deps_cli",
           "get_step_output_description", "main"]


class upstream(Config):  # noqa: N801 - Luigi's public name; gives the --upstream-family flag
    """``[upstream]``: the family at which ``trun-deps`` stops (``--upstream-family``)."""

    family = OptionalParameter(
        default=None,
        description="List only steps on a dependency path from the root step to a step of this family")


def get_step_requires(step: Step) -> set[Step]:
    """The steps ``step`` requires directly, as a set."""
    return set(flatten(step.requires()))


def _dependency_graph(root: Step) -> tuple[list[Step], dict[Step, list[Step]]]:
    """Every step reachable from ``root`` in depth-first discovery order, and each one's requirements."""
    order: list[Step] = []
    requirements: dict[Step, list[Step]] = {}
    stack = [root]
    while stack:
        step = stack.pop()
        if step in requirements:
            continue
        order.append(step)
        children = list(dict.fromkeys(flatten(step.requires())))  # deduplicated, in order
        requirements[step] = children
        stack.extend(child for child in reversed(children) if child not in requirements)
    return order, requirements


def _steps_on_paths(root: Step, goal_step_family: str | None) -> list[Step]:
    """The steps on some dependency path from ``root`` to a step of ``goal_step_family``, in discovery order.

    Linear in the size of the graph: a step qualifies when it is reachable from
    the root and a step of the goal family is reachable from it.
    """
    order, requirements = _dependency_graph(root)
    if goal_step_family is None:
        return order
    required_by: dict[Step, list[Step]] = {step: [] for step in order}
    for step, children in requirements.items():
        for child in children:
            required_by[child].append(step)
    leads_to_goal = {step for step in order if step.step_family == goal_step_family}
    queue = deque(leads_to_goal)
    while queue:
        for parent in required_by[queue.popleft()]:
            if parent not in leads_to_goal:
                leads_to_goal.add(parent)
                queue.append(parent)
    return [step for step in order if step in leads_to_goal]


def dfs_paths(start_step: Step, goal_step_family: str | None, path: list[Step] | None = None) -> Iterator[Step]:
    """Yield each step on a dependency path from ``start_step`` to a step of ``goal_step_family``, once.

    With ``goal_step_family=None`` every step reachable from ``start_step``.
    ``path`` is the route already taken to ``start_step`` (ending with it);
    its steps are yielded too when a goal is reached. Unlike Luigi, which
    walked every path and yielded a step once per path, this visits each
    step once.
    """
    steps = _steps_on_paths(start_step, goal_step_family)
    if steps and path:
        steps = list(dict.fromkeys([*path, *steps]))
    yield from steps


def find_deps(step: Step, upstream_step_family: str | None) -> set[Step]:
    """The steps on all dependency paths from ``step`` to a step of ``upstream_step_family``.

    With ``upstream_step_family=None``, ``step`` and all its dependencies.
    """
    return set(_steps_on_paths(step, upstream_step_family))


def find_deps_cli() -> set[Step]:
    """:func:`find_deps` for the step and ``--upstream-family`` on this process's command line."""
    with _root_step_from_cmdline("trun-deps", sys.argv[1:]) as root:
        return find_deps(root, upstream().family)


def _has_base(target: Any, module: str, name: str) -> bool:
    # Compared by name so that the contrib modules (and the client libraries they
    # import) are not loaded just to describe a target.
    return any(cls.__name__ == name and cls.__module__ == module for cls in type(target).__mro__)


def get_step_output_description(step_output: Any) -> str:
    """One target described for people: ``[FileSystem] path``, ``[S3] path``, ``[SSH] host:path``, ``[DB] host:table``."""
    if _has_base(step_output, "trun.contrib.ssh", "RemoteTarget"):
        fs = getattr(step_output, "_fs", None) or getattr(step_output, "fs", None)
        host = getattr(getattr(fs, "remote_context", None), "host", "?")
        return f"[SSH] {host}:{step_output.path}"
    if _has_base(step_output, "trun.contrib.s3", "S3Target"):
        return f"[S3] {step_output.path}"
    if isinstance(step_output, FileSystemTarget):
        return f"[FileSystem] {step_output.path}"
    if _has_base(step_output, "trun.contrib.postgres", "PostgresTarget"):
        return f"[DB] {step_output.host}:{step_output.table}"
    return "to be determined"


def _print_steps(steps: Sequence[Step]) -> None:
    for step in steps:
        print(f"   STEP: {step}")
        for output in flatten(step.output()):
            print(f"                       : {get_step_output_description(output)}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``trun-deps``; ``argv`` defaults to ``sys.argv[1:]``. Exits 2 for a command-line mistake."""
    from trun.step_register import Register, StepClassException

    cmdline_args = sys.argv[1:] if argv is None else list(argv)
    with _root_step_from_cmdline("trun-deps", cmdline_args) as root:
        family = upstream().family
        if family is not None:
            try:
                Register.get_step_cls(family)
            except StepClassException as exc:
                _exit_with_usage("trun-deps", f"--upstream-family {family}: {exc}")
        steps = _steps_on_paths(root, family)
        if family is not None and not steps:
            sys.stderr.write(f"trun-deps: no dependency path leads from {root} to a {family} step\n")
        _print_steps(steps)


if __name__ == "__main__":
    main()
