"""Tiny data and nets shared by the distiller's test modules."""

import numpy as np
import pytest
import torch
from torch import nn

from skpid import PIDDistiller
from skpid.distill.models import MLP

NAN, INF = float("nan"), float("inf")
@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def small_teacher():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def small_net(teacher=None, module=MLP, **kw):
    params = dict(teacher_layers=["1"], student_layers=["body"], max_epochs=2, rounds=2,
                  batch_size=16, lr=0.05, train_split=None, verbose=0)
    if module is MLP:
        params.update(module__n_features=4, module__hidden=4, module__n_classes=2)
    params.update(kw)
    return PIDDistiller(module, teacher if teacher is not None else small_teacher(),
                        **params)


_FITTED = {}


def fitted(method, data):
    """One fitted net per method, shared: refused set_params must leave it unchanged."""
    if method not in _FITTED:
        _FITTED[method] = small_net(method=method, rounds=1).fit(*data)
    return _FITTED[method]


FAST = dict(max_epochs=2, batch_size=32, lr=0.05, verbose=0, train_split=None,
            iterator_train__drop_last=True)


def mlp_net(teacher, method="rid", **kw):
    params = {**FAST, "teacher_layers": ["body"], "student_layers": ["body"], **kw}
    return PIDDistiller(MLP, teacher, method=method, module__hidden=8, **params)
