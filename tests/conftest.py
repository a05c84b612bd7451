import json
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "pid_reference.json"


def load_reference_cases():
    """The certified cases of ../shared/reference, or a skip reason if absent."""
    if not REFERENCE.exists():
        return []
    return json.loads(REFERENCE.read_text())["cases"]


ATOM_KEYS = {"redundancy": "red", "unique_teacher": "unique_T",
             "unique_student": "unique_S", "synergy": "synergy"}


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
