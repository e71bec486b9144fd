"""Sphinx configuration: the API reference, generated from the docstrings (Google style).

Build (from the repository root; warnings are errors, as in the test suite):

    python -m sphinx -W -b html docs docs/_build/html
"""
from __future__ import annotations

import optimus

project = "optimus"
author = "the optimus authors"
release = version = optimus.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
exclude_patterns = ["_build"]
default_role = "py:obj"  # `Graph` in a docstring links to its entry where there is one

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"  # signatures stay readable; types go with each argument
autodoc_class_signature = "separated"
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, not entries that could clash with members

html_theme = "alabaster"
html_title = f"optimus {release}"
