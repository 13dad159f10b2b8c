"""Sphinx configuration of the convgru docs site: Markdown pages (MyST), the PyData theme, the API
reference from the docstrings (autodoc + napoleon) and the config reference generated from the YAML
comments of convgru/conf at build time (convgru.training.config_docs).

Build (warnings are errors, as in CI's .ci/run):
    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the checkout's convgru, also when it is not installed

import convgru  # noqa: E402
from convgru.training.config_docs import write_reference  # noqa: E402
from convgru.training.paths import CONFIG_DIR  # noqa: E402

project = "convgru"
author = "the convgru authors"
copyright = "the convgru authors (MIT license)"
release = version = convgru.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
# No intersphinx: the site is built offline (CI has no internet); external links are not checked.

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
default_role = "code"  # `name` in a docstring is code, as the docstrings mean it
exclude_patterns = ["_build", "_generated", "**/README.md", "Thumbs.db", ".DS_Store"]
suppress_warnings = []

# --- MyST ---
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist", "attrs_inline"]
myst_heading_anchors = 3

# --- autodoc + napoleon: Google-style sections where the docstrings have them ---
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True  # defaults as written (not the builder's home folder)
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # types of the documented arguments, no partial lists
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_inherit_docstrings = False  # Lightning's docstrings of the hooks are not ours (and refer to its labels)
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# --- theme ---
html_theme = "pydata_sphinx_theme"
html_title = f"convgru {release}"
html_static_path = ["_static"]
html_css_files = ["convgru.css"]
html_show_sourcelink = False
html_sidebars = {page.stem: [] for page in DOCS.glob("*.md")}  # pages of one level: no empty left column
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 5,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}

# --- gallery ---
# sphinx-gallery: examples/plot_*.py are run at each build (tiny settings, seconds each; they write only
# into temporary folders) and rendered with their output and figures into docs/auto_examples/ (git-ignored).
extensions.append("sphinx_gallery.gen_gallery")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",                # run every example
    "within_subsection_order": "FileNameSortKey",  # moving_mnist, nowcast, porting
    "abort_on_example_error": True,               # a broken example fails the build
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
}
exclude_patterns.append("sg_execution_times.rst")
# The gallery's pages match both "**" and "auto_examples/**" (a warning, an error under -W): "*" is the
# pages of the top level only ("*" matches no "/" in Sphinx's patterns).
html_sidebars = {("*" if pattern == "**" else pattern): value for pattern, value in html_sidebars.items()}
# --- end gallery ---


def _write_config_reference(app):
    """docs/_generated/configs.md from the YAML comments of convgru/conf (included by docs/configs.md)."""
    write_reference(CONFIG_DIR, DOCS / "_generated" / "configs.md")


def setup(app):
    app.connect("builder-inited", _write_config_reference)
