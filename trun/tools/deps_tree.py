"""``trun-deps-tree``: print a step's dependency tree, marking each step COMPLETE or PENDING.

It reads the same command line as ``trun`` (module, step family, parameters)
but runs nothing: it prints the root step and, indented below it, everything
it requires, with the significant parameters of each::

    $ trun-deps-tree --module foo_complex Foo

    └─--[Foo-{} (PENDING)]
       |--[Bar-{'num': '0'} (PENDING)]
       |  |--[Bar-{'num': '4'} (COMPLETE)]
       |  └─--[Bar-{'num': '5'} (PENDING)]
       └─--[Bar-{'num': '1'} (PENDING)]

On a terminal the markers are coloured (COMPLETE green, PENDING blue);
piped or redirected output stays plain, as it does when ``NO_COLOR`` is set.

Hazards: ``complete()`` and ``requires()`` of every step are called, so the
tool touches whatever storage they read. A step required along several paths
is printed under each of them (its ``complete()`` is called once). A step
whose ``complete()`` raises is marked UNKNOWN, the error goes to stderr and
the exit status is 1.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import IO, Any, NoReturn

from trun.interface import _autoload_range
from trun.retcodes import _one_line  # the same one-line folding as the trun command
from trun.step import Step, flatten

__all__ = ["bcolors", "print_tree", "main"]

#: Exit status for a command-line mistake (argparse's convention).
USAGE_EXIT_CODE = 2


class bcolors:  # noqa: N801 - Luigi's public name
    """ANSI colour codes of the status markers."""

    OKBLUE = "\033[94m"
    OKGREEN = "\033[92m"
    FAIL = "\033[91m"
    ENDC = "\033[0m"


def _wants_color(stream: IO[str] | Any) -> bool:
    """Colour only for a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class _TreePrinter:
    """Builds the tree text; remembers ``complete()`` answers and the steps whose check raised."""

    def __init__(self, use_color: bool) -> None:
        self.use_color = use_color
        self._complete: dict[Step, bool | None] = {}
        self.errors: list[tuple[Step, BaseException]] = []

    def _is_complete(self, step: Step) -> bool | None:
        if step not in self._complete:
            with warnings.catch_warnings():
                # A wrapper-like step without outputs is expected here; don't warn about it.
                warnings.filterwarnings("ignore", message=r"Step .* without outputs has no custom complete\(\) method")
                try:
                    self._complete[step] = bool(step.complete())
                except Exception as exc:
                    self._complete[step] = None
                    self.errors.append((step, exc))
        return self._complete[step]

    def _marker(self, step: Step) -> str:
        complete = self._is_complete(step)
        if complete is None:
            text, colour = "UNKNOWN", bcolors.FAIL
        elif complete:
            text, colour = "COMPLETE", bcolors.OKGREEN
        else:
            text, colour = "PENDING", bcolors.OKBLUE
        return colour + text + bcolors.ENDC if self.use_color else text

    def _label(self, step: Step, marker: str) -> str:
        params = step.to_str_params(only_significant=True)
        return f"[{type(step).__name__}-{params} ({marker})]"

    def render(self, root: Step, indent: str, last: bool) -> str:
        # Iterative, so that a deep chain of dependencies cannot exhaust the recursion limit.
        parts: list[str] = []
        stack: list[tuple[Step, str, bool, frozenset[Step]]] = [(root, indent, last, frozenset())]
        while stack:
            step, prefix, is_last, ancestors = stack.pop()
            line = "\n" + prefix + ("└─--" if is_last else "|--")
            child_prefix = prefix + ("   " if is_last else "|  ")
            if step in ancestors:
                parts.append(line + self._label(step, "dependency cycle"))
                continue
            parts.append(line + self._label(step, self._marker(step)))
            children = flatten(step.requires())
            inner = ancestors | {step}
            for index in range(len(children) - 1, -1, -1):  # pushed in reverse, printed in order
                stack.append((children[index], child_prefix, index == len(children) - 1, inner))
        return "".join(parts)


def print_tree(step: Step, indent: str = "", last: bool = True, use_color: bool | None = None) -> str:
    """The dependency tree of ``step`` as text, one line per step, each line starting with a newline.

    ``indent`` prefixes every line and ``last`` chooses the connector of the
    first one (``└─--`` when true, ``|--`` otherwise). ``use_color`` defaults
    to whether standard output is a terminal.
    """
    printer = _TreePrinter(_wants_color(sys.stdout) if use_color is None else use_color)
    return printer.render(step, indent, last)


# --------------------------------------------------------------------------- command line shared with trun-deps


def _register_run_flags() -> None:
    """Register the configuration classes of a run, so a ``trun`` command line pasted here parses.

    Their flags (``--local-scheduler``, ``--workers``, ``--worker-keep-alive``…) are accepted and ignored.
    """
    import trun.interface  # noqa: F401 - [core]
    import trun.worker  # noqa: F401 - [worker]

    try:
        import trun.notifications  # noqa: F401 - [email], [smtp], …
    except ModuleNotFoundError as exc:
        if exc.name != "trun.notifications":
            raise


def _exit_with_usage(prog: str, message: str) -> NoReturn:
    usage = (f"usage: {prog} [--module MODULE] STEP_FAMILY [--PARAM VALUE ...] [--Family-param VALUE ...]"
             + (" [--upstream-family FAMILY]" if prog == "trun-deps" else ""))
    sys.stderr.write(f"{usage}\n{prog}: error: {_one_line(message)}\n")
    sys.stderr.flush()
    sys.exit(USAGE_EXIT_CODE)


@contextlib.contextmanager
def _root_step_from_cmdline(prog: str, cmdline_args: Sequence[str]) -> Iterator[Step]:
    """Parse a ``trun`` command line and yield its root step, with the parser active for the block.

    ``--Family-param`` flags apply to steps created while the block runs, so
    the dependencies must be walked inside it. Command-line mistakes print a
    usage line and ``<prog>: error: …`` to stderr and exit 2.
    """
    from trun.cmdline_parser import CmdlineParser
    from trun.parameter import ParameterException
    from trun.step_register import StepClassException

    _register_run_flags()
    _autoload_range()
    with contextlib.ExitStack() as stack:
        try:
            cmdline = stack.enter_context(CmdlineParser.global_instance(list(cmdline_args)))
            root = cmdline.get_step_obj()
        except SystemExit as exc:
            if isinstance(exc.code, str):  # a CommandLineError; --help's SystemExit(0) goes through
                _exit_with_usage(prog, exc.code)
            raise
        except (ParameterException, StepClassException) as exc:
            _exit_with_usage(prog, str(exc))
        yield root


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``trun-deps-tree``; ``argv`` defaults to ``sys.argv[1:]``.

    Exits 2 for a command-line mistake and 1 when a ``complete()`` raised.
    """
    cmdline_args = sys.argv[1:] if argv is None else list(argv)
    with _root_step_from_cmdline("trun-deps-tree", cmdline_args) as root:
        printer = _TreePrinter(_wants_color(sys.stdout))
        print(printer.render(root, "", True))
    if printer.errors:
        for step, exc in printer.errors:
            sys.stderr.write(f"trun-deps-tree: {step}.complete() raised {type(exc).__name__}: {exc}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
