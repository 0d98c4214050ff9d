"""The virtualenv that holds Luigi for the side-by-side benchmarks.

Luigi is only ever a benchmarking reference, never a dependency of trun, so it
lives in its own virtualenv next to the harness (``benchmarks/.venv-luigi``,
git-ignored), made with ``python -m venv`` and filled with
``pip install luigi==<version>``. :func:`ensure_luigi_venv` reuses it when it
already holds the right version.

Run directly to create or check it: ``python benchmarks/luigi_side/venv.py``.

Hazards: creating it needs the package index (PyPI) to be reachable; when it
is not, :class:`LuigiUnavailable` says why and the harness runs trun alone.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LUIGI_VERSION = "3.8.1"
DEFAULT_VENV = Path(__file__).resolve().parent.parent / ".venv-luigi"


class LuigiUnavailable(RuntimeError):
    """The Luigi virtualenv could not be created or does not work."""


def venv_python(venv: Path) -> Path:
    """The interpreter of ``venv``."""
    return venv / "bin" / "python"


def venv_luigid(venv: Path) -> Path:
    """The ``luigid`` command of ``venv``."""
    return venv / "bin" / "luigid"


def installed_luigi_version(venv: Path) -> str | None:
    """The version of Luigi installed in ``venv``, or None if it has none (or no venv is there)."""
    python = venv_python(venv)
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('luigi'))"],
        capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_luigi_venv(venv: Path = DEFAULT_VENV, version: str = LUIGI_VERSION, quiet: bool = True) -> Path:
    """Make sure ``venv`` holds Luigi ``version``; return its interpreter.

    Raises :class:`LuigiUnavailable` naming the failing command when the
    virtualenv cannot be made or the install fails.
    """
    if installed_luigi_version(venv) == version:
        return venv_python(venv)
    steps = []
    if not venv_python(venv).exists():
        steps.append([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("--quiet")
    steps.append([*pip, f"luigi=={version}"])
    for command in steps:
        print(f"[luigi venv] {' '.join(command)}", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=quiet, text=True)
        if done.returncode != 0:
            detail = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise LuigiUnavailable(
                f"could not prepare the Luigi virtualenv at {venv}: `{' '.join(command)}` exited with "
                f"{done.returncode}{': ' + detail[0] if detail else ''}. Run with --no-luigi to benchmark "
                f"trun alone, or delete {venv} and try again.")
    found = installed_luigi_version(venv)
    if found != version:
        raise LuigiUnavailable(f"the Luigi virtualenv at {venv} holds Luigi {found}, expected {version}; "
                               f"delete {venv} and run again")
    return venv_python(venv)


if __name__ == "__main__":
    print(ensure_luigi_venv(quiet=False))
