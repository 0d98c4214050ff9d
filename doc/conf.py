"""Sphinx configuration for trun's documentation (``tox -e docs``).

Builds offline: no intersphinx, no external themes, no network fetches. The
API pages import trun's modules through autodoc, so the package must be
importable (it is, from the repository root added to ``sys.path`` below).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from trun.__version__ import __version__  # noqa: E402 - needs the sys.path entry above

project = "trun"
author = "the trun authors"
copyright = "the trun authors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False

autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_typehints = "signature"

html_theme = "alabaster"
html_theme_options = {
    "description": "Workflows of Python steps, coordinated by trund",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []
