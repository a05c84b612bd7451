import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

# Certified BROJA values, kept in the repository (provenance: tests/data/README.md).
REFERENCE = Path(__file__).resolve().parent / "data" / "pid_reference.json"


def load_reference_cases():
    """The certified cases of tests/data/pid_reference.json (an empty list if the file is
    missing, which ``test_reference_file_is_present`` reports as a failure)."""
    if not REFERENCE.exists():
        return []
    return json.loads(REFERENCE.read_text())["cases"]


ATOM_KEYS = {"redundancy": "red", "unique_teacher": "unique_T",
             "unique_student": "unique_S", "synergy": "synergy"}


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (which imports its siblings)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def atoms_of(result):
    return np.array([result.redundancy, result.unique_teacher,
                     result.unique_student, result.synergy])


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
