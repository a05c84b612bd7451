"""What each class page of the API reference lists (``_templates/class.rst``).

Importable without Sphinx (``tests/test_docs.py`` renders the class template with it);
the class attributes documented with ``#:`` comments are found with Sphinx's source
analyzer where Sphinx is installed.
"""

from __future__ import annotations

import importlib
import inspect

#: The methods a distiller's page lists: what a user calls, much of it inherited from
#: skorch (``partial_fit``, ``predict_proba``, ``save_params``, ...) and scikit-learn
#: (``score``).
DISTILLER_METHODS = ["effective_pid_weight", "fit", "get_params", "initialize",
                     "load_params", "partial_fit", "predict", "predict_proba",
                     "representations", "save_params", "score", "set_params"]

#: scikit-learn's methods that the pages of its estimators list besides their own.
ESTIMATOR_METHODS = ["fit_transform", "get_params", "set_params"]

#: The modules whose public classes have pages.
MODULES = ("skpid", "skpid.distill", "skpid.distill.models", "skpid.distill.tasks",
           "skpid.exceptions")


def api_members() -> dict:
    """``{"module.Class": {"methods", "hooks", "attributes", "properties", "foreign"}}``.

    ``methods`` are the public methods a user calls, each documented on the page below a
    summary table: those with a docstring that the class defines (itself or through a
    private base class; what a public base class defines is on that class's page), plus
    scikit-learn's ``fit_transform``, ``get_params`` and ``set_params`` for the
    scikit-learn estimators.  The distillers are skorch nets: they list
    ``DISTILLER_METHODS`` and name the steps of skorch's training loop they override
    (``get_loss``, ``train_step``, ``on_epoch_end``, ...) apart, as ``hooks`` for
    subclasses.  ``attributes`` are the class attributes documented with ``#:``
    comments, ``properties`` the documented properties.  ``foreign`` are the listed
    methods that skorch or scikit-learn define (their docstrings are theirs to check).
    """
    from sklearn.base import BaseEstimator

    from skpid.distill import PIDDistiller

    members = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", dir(module)):
            cls = getattr(module, name)
            if isinstance(cls, type) and not name.startswith("_"):
                members[f"{module_name}.{name}"] = _class_members(
                    cls, distiller=issubclass(cls, PIDDistiller),
                    estimator=issubclass(cls, BaseEstimator))
    return members


def _class_members(cls, distiller: bool, estimator: bool) -> dict:
    ours = [c for c in cls.__mro__ if c is cls or (
        c.__module__.startswith("skpid") and c.__name__.startswith("_"))]
    public = sorted(m for m in dir(cls)
                    if not m.startswith("_") and not m.endswith("_request"))

    def own(member):
        """The member as the class or one of its private bases defines it, or None."""
        return next((vars(c)[member] for c in ours if member in vars(c)), None)

    def documented(member) -> bool:
        return bool(getattr(own(member), "__doc__", None))

    routines = [m for m in public if inspect.isroutine(getattr(cls, m))]
    if distiller:
        methods = list(DISTILLER_METHODS)
        hooks = [m for m in routines if own(m) is not None and m not in methods]
    else:
        methods = [m for m in routines
                   if documented(m) or (estimator and m in ESTIMATOR_METHODS)]
        hooks = []
    attr_docs = _attribute_docs(ours)
    return dict(
        methods=methods, hooks=hooks,
        attributes=[m for m in public if m in attr_docs],
        properties=[m for m in public if isinstance(own(m), property) and documented(m)],
        foreign=[m for m in methods
                 if not getattr(getattr(cls, m), "__module__", "").startswith("skpid")])


def _attribute_docs(classes) -> set:
    """Names of the class attributes documented with ``#:`` comments in ``classes``."""
    try:
        from sphinx.pycode import ModuleAnalyzer
    except ImportError:  # the tests run without Sphinx
        return set()
    names = set()
    for cls in classes:
        docs = ModuleAnalyzer.for_module(cls.__module__).find_attr_docs()
        names |= {attr for (qualname, attr) in docs if qualname == cls.__qualname__}
    return names
