"""The API reference lists every public name (no Sphinx build needed)."""

import inspect
import re
from pathlib import Path

import pytest


API = Path(__file__).resolve().parents[1] / "docs" / "api" / "index.rst"


def _documented() -> set:
    """Names listed in the autosummary blocks of the API page (each gets its own page),
    plus ``__version__``, which is described in the text."""
    text = API.read_text(encoding="utf-8")
    names = set(re.findall(r"^ {3}([A-Za-z_][A-Za-z0-9_]*)\s*$", text, flags=re.M))
    if "``skpid.__version__``" in text:
        names.add("__version__")
    return names


def _public(module) -> list:
    """``__all__``, or the module's own public functions, classes and constants."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if getattr(obj, "__module__", module.__name__) != module.__name__:
            continue  # imported from elsewhere (np, check_random_state, ...)
        names.append(name)
    return names


def _modules():
    pytest.importorskip("torch")
    import skpid.datasets
    import skpid.distill
    import skpid.distill.models
    import skpid.distill.tasks
    import skpid.exceptions
    return [skpid, skpid.distill, skpid.distill.models, skpid.distill.tasks, skpid.datasets,
            skpid.exceptions]


def test_every_public_name_is_in_the_api_reference():
    documented = _documented()
    missing = [f"{module.__name__}.{name}" for module in _modules()
               for name in _public(module) if name not in documented]
    assert not missing, f"add these to docs/api/index.rst: {missing}"


def test_public_names_are_found():
    # guards the helper above: it must see the names it is meant to check
    import skpid.datasets
    assert {"gate_pmf", "GATES", "make_teacher_student"} <= set(_public(skpid.datasets))
    assert "np" not in _public(skpid.datasets)
    assert "PIDDistiller" in _public(skpid)


DOCS = API.parents[1]

#: What a user of a distiller calls: its page must document each of them.
DISTILLER_METHODS = {"fit", "partial_fit", "predict", "predict_proba", "score",
                     "save_params", "load_params", "set_params", "get_params"}
#: skorch's training-loop steps a distiller overrides: named apart, never documented
#: as methods on its page.
HOOKS = {"get_loss", "train_step", "infer", "initialize_module", "initialize_criterion",
         "initialize_optimizer", "on_epoch_end", "on_train_begin", "get_iterator",
         "check_data", "get_dataset"}


def _class_page(fullname, members) -> str:
    """``docs/_templates/class.rst`` rendered as autosummary renders it (its filters
    ``escape`` and ``underline``), without a Sphinx build."""
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(DOCS / "_templates"))
    env.filters["escape"] = lambda text: text.replace("_", r"\_")
    env.filters["underline"] = lambda text, line="-": f"{text}\n{line * len(text)}"
    module, _, objname = fullname.rpartition(".")
    return env.get_template("class.rst").render(
        fullname=fullname, module=module, objname=objname, api_members=members)


def _api_members() -> dict:
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "api_members", DOCS / "sphinxext" / "api_members.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.api_members()


@pytest.mark.parametrize("name", ["PIDDistiller", "AcceleratedPIDDistiller"])
def test_distiller_pages_list_the_methods_a_user_calls(name):
    pytest.importorskip("torch")
    members = _api_members()
    page = _class_page(f"skpid.{name}", members)
    documented = set(re.findall(r"^ {3}\.\. automethod:: (\w+)$", page, flags=re.M))
    table = page.split(".. rubric:: Methods")[1].split(".. rubric::")[0]
    in_table = set(re.findall(rf"^ {{6}}~{name}\.(\w+)$", table, flags=re.M))
    assert DISTILLER_METHODS <= documented and DISTILLER_METHODS <= in_table
    assert documented == in_table
    assert not documented & HOOKS
    # the hooks it overrides are named apart, after the methods
    hooks = page.split(".. rubric:: Hooks for subclasses")[1]
    assert "``on_train_begin``" in hooks
    if name == "PIDDistiller":
        assert HOOKS <= set(re.findall(r"``(\w+)``", hooks))


def test_estimator_pages_list_inherited_scikit_learn_methods():
    members = _api_members()
    listed = members["skpid.PIDEstimator"]["methods"]
    assert {"fit", "transform", "score", "fit_transform", "get_params",
            "set_params"} <= set(listed)
    assert members["skpid.PIDEstimator"]["hooks"] == []
    assert "get_feature_names_out" in members["skpid.KMeansDiscretizer"]["methods"]
    # a torch module lists what it defines, not nn.Module's API
    assert "parameters" not in members["skpid.distill.RIDLoss"]["methods"]


def test_scripts_compile_without_warnings():
    # an invalid escape sequence in a string is a SyntaxWarning (a DeprecationWarning
    # before Python 3.12) at compile time
    import warnings
    for script in sorted([*DOCS.parent.glob("examples/*.py"),
                          *DOCS.parent.glob("benchmarks/*.py")]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compile(script.read_text(encoding="utf-8"), str(script), "exec")
