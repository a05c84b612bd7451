"""StudentEarlyStopping (``skpid/distill/_budget.py``): the plateau count, the learning
rate lowered once per plateau, and both carried over a continued fit."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from torch import nn

from skpid import PIDDistiller
from skpid.distill import StudentEarlyStopping
from skpid.distill.models import MLP


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def stalled_net(**kw):
    """A net whose student never improves after its first epoch (an improvement must
    halve the training loss's distance to 0 and more: ``threshold=1``), so that the
    plateau starts at epoch 1: halfway (lower the rates) at epoch 6, stop at epoch 11."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    params = dict(module__n_features=4, module__hidden=4, module__n_classes=2,
                  train_split=None, verbose=0, random_state=0, teacher_check="ignore",
                  max_epochs=100, callbacks__early_stopping__threshold=1.0,
                  callbacks__early_stopping__patience=10,
                  callbacks__early_stopping__min_steps=0)
    return PIDDistiller(MLP, teacher, **{**params, **kw})


class RecordLR(Callback):
    """A history column ``lr_now``: the student's learning rate during each epoch."""

    def on_epoch_begin(self, net, **kwargs):
        net.history.record("lr_now", net.optimizer_.param_groups[0]["lr"])


def lr_column():
    return ("lr_now", RecordLR())


def learning_rates(net):
    return [row["lr_now"] for row in net.history]


def test_the_rate_is_lowered_once_halfway_and_training_stops_at_patience(data):
    X, y = data
    net = stalled_net(callbacks=[lr_column()]).fit(X, y)
    assert len(net.history) == 11
    rates = learning_rates(net)
    assert rates[:6] == [1e-2] * 6                      # epochs 1-6
    np.testing.assert_allclose(rates[6:], 1e-2 * 0.3)  # lowered after epoch 6, once


def test_no_decay_keeps_the_rate(data):
    X, y = data
    net = stalled_net(callbacks=[lr_column()],
                      callbacks__early_stopping__lr_decay=None).fit(X, y)
    assert learning_rates(net) == [1e-2] * 11


def test_a_continued_fit_counts_on_and_does_not_lower_the_rate_twice(data):
    """fit for 8 epochs (past halfway), then partial_fit: the same 11 epochs, the same
    rates and weights as one uninterrupted fit."""
    X, y = data
    whole = stalled_net(callbacks=[lr_column()]).fit(X, y)
    split = stalled_net(callbacks=[lr_column()], max_epochs=8).fit(X, y)
    split.set_params(max_epochs=100)
    split.partial_fit(X, y)
    assert len(split.history) == len(whole.history) == 11
    assert learning_rates(split) == learning_rates(whole)
    for a, b in zip(split.module_.parameters(), whole.module_.parameters()):
        torch.testing.assert_close(a, b)


def test_settings_are_checked_at_initialize():
    with pytest.raises(ValueError, match="lr_decay"):
        StudentEarlyStopping(lr_decay=0).initialize()
    with pytest.raises(ValueError, match="monitor"):
        StudentEarlyStopping(monitor="auc").initialize()
