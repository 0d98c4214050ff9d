"""The console scripts: ``trun`` (run a workflow) and ``trund`` (the central scheduler).

``trun [--module M] StepFamily [--param value …] [--Family-param value …] [flags]``
parses the command line (``trun.cmdline_parser``), runs the root step and exits
with the code ``trun.retcodes`` computes. ``python -m trun`` is the same
command. ``trund`` is implemented in ``trun.process``.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["trun_run", "trund"]


def trun_run(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``trun`` command; ``argv`` defaults to ``sys.argv[1:]``. Always exits."""
    from trun.retcodes import run_with_retcodes
    run_with_retcodes(sys.argv[1:] if argv is None else argv)


def trund(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``trund`` command (the central scheduler daemon)."""
    from trun.process import trund_main
    if argv is None:
        trund_main()
    else:
        trund_main(list(argv))
