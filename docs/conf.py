"""Sphinx configuration of the skpid documentation.

Build (from the repository root, with the ``docs`` extra installed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

sphinx-gallery runs every ``examples/plot_*.py`` during the build; a failing example
fails the build.  ``SKPID_EXAMPLES_QUICK=1`` shortens the examples' training (CI).
"""

import inspect
import os
import re
import sys
import warnings

# The examples run in this process, on tiny models and data: one thread is about as fast
# on an idle machine and avoids spin-waiting OpenMP/BLAS/torch threads on a busy one.
# Measured on a 2-core machine with one other busy process: the digits CNN example took
# 8 s with one torch thread and 90 s with two; the tabular example (scikit-learn's
# HistGradientBoosting, OpenMP) 3 min with default threads.  Set before numpy, scikit-learn
# and torch load their thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Build against the working tree (CI installs the package too; the two are the same).
sys.path.insert(0, os.path.abspath(".."))
# The gallery's sort key and what the class pages list (sphinxext/).
sys.path.insert(0, os.path.abspath("sphinxext"))

import skpid  # noqa: E402

project = "skpid"
author = "skpid developers"
copyright = "skpid developers"
release = skpid.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax served from the built site itself, so that formulas render offline (the
    # default loads it from a CDN).
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5"]
root_doc = "index"
default_role = "code"  # `x` renders as inline code, never a broken reference

# -- API reference ---------------------------------------------------------------------
autosummary_generate = True
# Class pages (``_templates/class.rst``) open with a table of the methods a user calls
# and document each of them, inherited ones included where a user calls them (the
# distillers' skorch and scikit-learn methods): ``sphinxext/api_members.py`` decides.
autodoc_default_options = {
    "members": True, "inherited-members": False, "member-order": "groupwise",
    # scikit-learn's metadata-routing setters are generated per class; their docstrings
    # point into scikit-learn's own glossary.
    "exclude-members": "set_fit_request, set_partial_fit_request, set_score_request, "
                       "set_transform_request, set_predict_request, "
                       "set_predict_proba_request",
}

from api_members import api_members as _class_pages  # noqa: E402 (sphinxext/)

api_members = _class_pages()
autosummary_context = {"api_members": api_members}
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
numpydoc_show_class_members = False  # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Checks of the public docstrings that must hold: every public object has a docstring
# (GL08), sections are known and in order (GL06, GL07), documented parameters exist
# (PR02) and summaries end with a period (SS03).  Not yet enforced: PR01 (every
# parameter documented) and RT01 (a Returns section), which the functional loss cores,
# a few methods and the dataclass results (fields documented as Attributes) lack.
numpydoc_validation_checks = {"GL06", "GL07", "GL08", "PR02", "SS03"}
numpydoc_validation_exclude = {
    r"\.__init__$", r"\.__repr__$", r"\.forward$", r"\.set_output$",
    r"\.set_fit_request$", r"\.set_score_request$", r"\.set_transform_request$",
    # methods the class pages list but skorch or scikit-learn define and document
    *(rf"^{re.escape(f'{name}.{method}')}$" for name, listed in api_members.items()
      for method in listed["foreign"]),
}

# -- HTML ------------------------------------------------------------------------------
# pydata-sphinx-theme, as scikit-learn, NumPy, SciPy and pandas: a navigation bar with
# the top-level pages, the section's pages on the left, the page's contents on the
# right.  Its fonts, icons and scripts are bundled: the site needs no network, and
# neither does the build.
html_theme = "pydata_sphinx_theme"
html_title = f"skpid {release}"
html_static_path = ["_static"]
html_css_files = ["skpid.css"]
html_theme_options = {
    "logo": {"text": f"skpid {release}"},
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# The page contents on the right name a class's methods without the class ("fit()").
toc_object_entries_show_parents = "hide"
# The home page and the single pages need no section navigation on the left.
html_sidebars = {"index": [], "changelog": [], "contributing": []}

# -- Gallery ---------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # execute every plot_*.py
    "plot_gallery": "True",
    # A failing example fails the build (after all examples ran, so every failure is
    # listed); never downgrade errors to warnings.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "min_reported_time": 0,
    # the introduction (the gates) first, then from measuring to distilling and tuning
    "within_subsection_order": "gallery_order.ExampleOrder",
    "doc_module": ("skpid",),
    "backreferences_dir": "gen_modules/backreferences",
    "remove_config_comments": True,
}

# Examples use the non-interactive backend; matplotlib's "cannot show" warning is noise.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="FigureCanvasAgg is non-interactive")


# -- Docstrings of inherited methods ---------------------------------------------------
def _inherited_docstring(app, what, name, obj, options, lines):
    """Give a listed method without a docstring of its own the first docstring along its
    class's MRO (skorch's ``AccelerateMixin.save_params`` has none, the distiller's
    does), and turn the cross-references of other projects' docstrings, which point into
    their own sites, into plain text."""
    if what != "method":
        return
    cls_name, _, member = name.rpartition(".")
    module_name, _, cls_qualname = cls_name.rpartition(".")
    cls = getattr(sys.modules.get(module_name), cls_qualname, None)
    if not lines and isinstance(cls, type):
        for base in cls.__mro__:
            doc = getattr(vars(base).get(member), "__doc__", None)
            if doc:
                lines.extend(inspect.cleandoc(doc).splitlines())
                break
    if not getattr(obj, "__module__", "skpid").startswith("skpid"):
        lines[:] = [re.sub(r":ref:`([^`<]+?)\s*<[^`>]+>`", r"\1",
                           re.sub(r":ref:`([^`<]+)`", r"``\1``", line)) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _inherited_docstring, priority=400)
