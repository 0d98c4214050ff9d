"""Packaging (``setup.py``): what a built wheel of trun contains."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _data_files() -> list[str]:
    """The visualiser's files and the history pages' templates, as paths inside the wheel."""
    found = []
    for folder in ("static", "templates"):
        for path in sorted((ROOT / "trun" / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found.append(path.relative_to(ROOT).as_posix())
    return found


@pytest.mark.slow
def test_the_wheel_ships_the_visualiser_and_the_page_templates(tmp_path: Path) -> None:
    # Built from a copy: building in the checkout would leave build/ and *.egg-info in it.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "trun", source / "trun", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "README.rst"):
        shutil.copy(ROOT / name, source / name)
    # With build isolation, as `pip install .` builds (pip fetches setuptools into the build env).
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr[-2000:]
    # setuptools warns about data directories that are importable but not listed as packages.
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    names = set(zipfile.ZipFile(next((tmp_path / "dist").glob("trun-*.whl"))).namelist())
    expected = _data_files()
    assert "trun/static/visualiser/index.html" in expected and "trun/templates/layout.html" in expected
    assert [name for name in expected if name not in names] == []
    assert "trun/py.typed" in names and "trun/server.py" in names
