import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skpid.distill.models import MLP, SmallCNN


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Tiny models: a second intra-op thread only spins (and on a busy 2-core CI machine
    the waits grow pathological), so these tests run torch on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def assert_criterion_refuses(criterion, params, error, name):
    """``criterion(**params)`` raises ``error`` naming ``name``, and its
    ``check_params`` names the routed ``method__<name>``."""
    with pytest.raises(error, match=name):
        criterion(**params)
    with pytest.raises(error, match=f"method__{name}"):
        criterion.check_params(params, prefix="method__")


def state_copy(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class NoiseOnly(torch.nn.Module):
    """A teacher that sees only the noise columns appended by ``noisy_digits``:
    I(Y;T) = 0 at every layer (``net.body``) and at its logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = MLP(64, hidden=32)

    def forward(self, x):
        return self.net(x[:, 64:])


@pytest.fixture(scope="session")
def noisy_digits(digits):
    """``digits`` with 64 columns of Gaussian noise appended (128 columns)."""
    X, y = digits
    noise = np.random.default_rng(0).normal(size=X.shape).astype(np.float32)
    return np.concatenate([X, noise], axis=1), y


@pytest.fixture
def noise_only():
    """A fresh :class:`NoiseOnly` teacher in eval mode."""
    return NoiseOnly().eval()
