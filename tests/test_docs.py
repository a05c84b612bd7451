"""The API reference lists every public name (no Sphinx build needed)."""

import inspect
import re
from pathlib import Path

import pytest

import skpid

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
