"""Sphinx configuration for the cellvision documentation (no network access needed)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))

import cellvision

project = "cellvision"
author = "The cellvision developers"
copyright = "2026, The cellvision developers"
release = cellvision.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

# Docstring examples are run by pytest --doctest-modules; the Sphinx doctest builder runs the
# explicit ``.. doctest::`` / ``.. testcode::`` blocks of the user guide pages.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import torch
import numpy as np
torch.manual_seed(0)
"""
