import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skpid.distill.models import MLP, SmallCNN


@pytest.fixture(scope="session")
def digits():
    """300 digits: flat float32 features in [0, 1] and int64 labels."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:300]
    return (X[idx] / 16.0).astype(np.float32), y[idx].astype(np.int64)


@pytest.fixture(scope="session")
def digit_images(digits):
    X, y = digits
    return X.reshape(-1, 1, 8, 8), y


@pytest.fixture
def teacher_mlp():
    torch.manual_seed(0)
    return MLP(64, hidden=32)


@pytest.fixture
def teacher_cnn():
    torch.manual_seed(1)
    return SmallCNN(width=8)


def state_copy(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
