"""Every method by name through the net (``_methods``): what each criterion needs from
it (labels, the epoch, class means from a pass over the data, a row index for a memory
bank, batches of a minimum size), and the teacher check and the gate working with it."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skpid import PIDDistiller
from skpid.distill import METHODS, CRDLoss, DKDLoss
from skpid.distill.models import MLP
from skpid.exceptions import NuisanceTeacherWarning

LAYERED = {"fitnet", "vid", "rid", "ted", "nd", "crd"}


def net(teacher, method, **kw):
    layers = (dict(teacher_layers=["body"], student_layers=["body"])
              if method in LAYERED else {})
    params = dict(module__hidden=8, max_epochs=2, batch_size=32, verbose=0,
                  random_state=0, train_split=None, **layers)
    return PIDDistiller(MLP, teacher, method=method, **{**params, **kw})


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_by_name_with_the_check_and_the_gate(method, digits,
                                                                  teacher_mlp):
    X, y = digits
    fitted = net(teacher_mlp, method, pid_gate=True, pid_gate_every=1).fit(X, y)
    assert isinstance(fitted.method_, METHODS[method])
    assert np.isfinite(fitted.history[-1, "train_loss"])
    assert fitted.effective_pid_weight() == METHODS[method].recommended_weight
    if method != "none":
        assert fitted.teacher_information_  # the check measured what is distilled
        assert fitted.pid_gates_


def test_method_params_route_to_the_new_criteria(digits, teacher_mlp):
    X, y = digits
    fitted = net(teacher_mlp, "dkd", method__beta=2.0, method__warmup=5).fit(X, y)
    assert (fitted.method_.beta, fitted.method_.warmup) == (2.0, 5)
    with pytest.raises(ValueError, match="method__beta"):
        net(teacher_mlp, "dkd", method__beta=-1.0).fit(X, y)


class Epochs(DKDLoss):
    """Records the epoch the net passes."""

    seen = []

    def forward(self, *args, epoch=None, **kwargs):
        self.seen.append(epoch)
        return super().forward(*args, epoch=epoch, **kwargs)


def test_the_epoch_reaches_the_criterion(digits, teacher_mlp):
    X, y = digits
    Epochs.seen.clear()
    fitted = net(teacher_mlp, Epochs(warmup=4), max_epochs=3).fit(X, y)
    assert sorted(set(Epochs.seen)) == [1, 2, 3]
    assert fitted.history[0, "train_tckd"] > 0  # the terms are averaged per epoch


def test_class_means_are_computed_at_the_start_of_fit_and_kept(digits, teacher_mlp):
    X, y = digits
    fitted = net(teacher_mlp, "nd").fit(X, y)
    means = fitted.method_.class_means_0.clone()
    # the teacher's embedding of the training rows, averaged per class
    with torch.no_grad():
        embedding = teacher_mlp.body(torch.as_tensor(X)).numpy()
    expected = np.stack([embedding[y == c].mean(axis=0) for c in range(10)])
    np.testing.assert_allclose(means.numpy(), expected, rtol=1e-4, atol=1e-5)
    fitted.partial_fit(X[:100], y[:100], epochs=1)
    assert torch.equal(fitted.method_.class_means_0, means)  # kept by partial_fit


class Indices(CRDLoss):
    """Records the row indices the net passes."""

    seen = []

    def forward(self, *args, index=None, **kwargs):
        if index is not None:
            self.seen.append(index.clone())
        return super().forward(*args, index=index, **kwargs)


def test_crd_gets_each_training_rows_index(digits, teacher_mlp):
    X, y = digits
    Indices.seen.clear()
    fitted = net(teacher_mlp, Indices(n_negatives=16, random_state=0), max_epochs=1,
                 iterator_train__shuffle=False, batch_size=100).fit(X, y)
    assert torch.equal(torch.cat(Indices.seen), torch.arange(300))
    assert fitted.method_.memory_student.shape == (1, 300, 128)


def test_a_batch_level_criterion_gets_no_batch_below_its_minimum(digits, teacher_mlp):
    X, y = digits

    class Sizes(Callback):
        def initialize(self):
            self.sizes = []
            return self

        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            if training:
                self.sizes.append(len(batch[0]))

    sizes = Sizes()
    fitted = net(teacher_mlp, "sinkd", batch_size=299, callbacks=[sizes]).fit(X, y)
    assert sizes.sizes == [299, 299]  # the tail of one row is dropped each epoch
    assert fitted.method_.min_batch_size == 2


class ConstantLogits(torch.nn.Module):
    """A teacher whose layer ``body`` knows the digits and whose logits are the same
    for every row (no task information)."""

    def __init__(self, body):
        super().__init__()
        self.body = body
        self.bias = torch.nn.Parameter(torch.linspace(-1, 1, 10))

    def forward(self, x):
        return self.bias.expand(len(x), 10) + 0 * self.body(x).sum(1, keepdim=True)


@pytest.mark.filterwarnings("ignore:n_clusters=10 is more than:UserWarning")  # the logits
def test_kd_plus_plus_checks_and_gates_the_logits_it_distills(digits, teacher_mlp):
    """KD++ distills the logits besides its layer pairs: the check measures them, a
    nuisance verdict switches its KD term off (the ND term stays), the gate has a
    logits gate."""
    X, y = digits
    teacher = ConstantLogits(teacher_mlp.body).eval()
    with pytest.warns(NuisanceTeacherWarning, match="logits"):
        fitted = net(teacher, "nd", method__warmup=0).fit(X, y)
    assert fitted.nuisance_layers_ == {"logits"}
    assert fitted.teacher_information_["body"] > 1.0 and fitted.teacher_information_["logits"] < 0.1
    last = fitted.history[-1]
    assert last["train_logit_kd"] > 0.1  # the KD term is measured, not distilled
    assert last["train_distill"] == pytest.approx(last["train_nd"], rel=1e-6)
    gated = net(teacher_mlp, "nd", pid_gate=True, pid_gate_every=1).fit(X, y)
    assert set(gated.pid_gates_) == {"gate_0", "gate_kd"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_zero_epoch_fit_initialises_every_method(method, digits, teacher_mlp):
    """``max_epochs=0`` (the guides' way to hold the initialised student) fits, records
    no epoch and predicts, whatever the method."""
    X, y = digits
    fitted = net(teacher_mlp, method, max_epochs=0).fit(X, y)
    assert len(fitted.history) == 0
    assert fitted.predict(X[:5]).shape == (5,)
