"""Non-finite losses (``_nonfinite``): training stops (or warns) naming the epoch, the
batch, the term and the cause."""

import warnings

import numpy as np
import pytest
import torch
from skorch.dataset import ValidSplit
from torch import nn

from ._small import INF, NAN, data, small_net, small_teacher  # noqa: F401 (data: a fixture)


# ---------------------------------------------------------------------------------------
# class 4: non-finite values
def large_teacher():
    """Hidden features of order 1e3: a FitNets distance of order 1e5."""
    teacher = small_teacher()
    with torch.no_grad():
        teacher[0].weight.mul_(1000.0)
    return teacher


class NaNAtLayer(nn.Module):
    """A teacher whose hidden layer "act" outputs NaN."""

    def __init__(self):
        super().__init__()
        self.lin, self.act, self.out = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.act(self.lin(x) * NAN))


class InfLogits(nn.Module):
    """A teacher with finite hidden features and infinite logits."""

    def __init__(self):
        super().__init__()
        self.lin, self.act, self.out = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.act(self.lin(x))) * INF


class NaNWhenEval(nn.Module):
    """A student that is finite in training and NaN in evaluation."""

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        out = self.head(torch.relu(self.body(x)))
        return out if self.training else out * NAN


class NaNAfter(nn.Module):
    """A student whose logits (or, ``at="body"``, its hidden layer ``body``) turn NaN
    from its fourth forward pass on."""

    def __init__(self, at="logits"):
        super().__init__()
        self.body, self.head = nn.Linear(4, 4), nn.Linear(4, 2)
        self.at = at
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        hidden = self.body(x)
        if self.at == "body" and self.calls > 3:
            hidden = hidden * NAN
        out = self.head(torch.relu(hidden))
        return out * NAN if self.at == "logits" and self.calls > 3 else out


@pytest.mark.parametrize("kw, match", [
    (dict(teacher=NaNAtLayer(), teacher_layers=["act"], method="rid"),
     r"^Non-finite loss at epoch 1, training batch 1 \(teacher phase\): loss term "
     r"filter_ce=nan\. The teacher \(NaNAtLayer\) outputs NaN or infinity at "
     r"teacher_layers\[0\] = 'act'\."),
    (dict(teacher=InfLogits(), teacher_layers=["act"], method="fitnet", kd_weight=1.0),
     r"^Non-finite loss at epoch 1, training batch 1: loss term kd=nan\. The teacher "
     r"\(InfLogits\) outputs NaN or infinity in its logits"),
    (dict(module=NaNAfter, teacher_layers=None, student_layers=None, method="kd"),
     r"^Non-finite loss at epoch 1, training batch 3: loss term ce=nan, distill=nan\. "
     r"The student \(NaNAfter\) outputs NaN or infinity in its logits"),
    (dict(module=NaNWhenEval, method="vid", train_split=ValidSplit(4)),
     r"^Non-finite loss at epoch 1, validation batch 1: loss term ce=nan\."),
    (dict(teacher=large_teacher(), method="fitnet", pid_weight=3e38),
     r"^Non-finite loss at epoch 1, training batch 1: the weighted sum of the terms \(the "
     r"loss\) is inf"),
    (dict(method="kd", teacher_layers=None, student_layers=None, temperature=1e-300),
     r"training batch 1: loss term distill=nan\. The inputs, the teacher's and the "
     r"student's outputs and parameters are finite: the term itself overflowed"),
])
def test_non_finite_losses_stop_training_naming_epoch_batch_term_and_cause(kw, match,
                                                                           data):
    X, y = data
    # the check's verdict on these random teachers does not matter here: distill them
    net = small_net(**{"teacher_check": "ignore", **kw})
    with pytest.raises(FloatingPointError, match=match):
        net.fit(X, y)
    assert len(net.history) == 1  # stopped in the first epoch


def test_on_nonfinite_warn_reports_once_per_epoch_and_trains_on(data):
    X, y = data
    net = small_net(teacher=NaNAtLayer(), teacher_layers=["act"], method="rid",
                    max_epochs=3, on_nonfinite="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert [m.split(",")[0] for m in messages] == [
        "Non-finite loss at epoch 1", "Non-finite loss at epoch 2",
        "Non-finite loss at epoch 3"]
    assert all("teacher_layers[0] = 'act'" in m for m in messages)
    assert len(net.history) == 3


def test_gate_and_monitor_skip_non_finite_representations(data):
    from skpid import PIDMonitor
    X, y = data
    net = small_net(module=NaNAfter(at="body"), method="fitnet", on_nonfinite="warn", max_epochs=3,
                    pid_gate=True, pid_gate_every=1, train_split=ValidSplit(2),
                    callbacks=[PIDMonitor(n_clusters=2)])
    with pytest.warns(RuntimeWarning) as caught:
        net.fit(X, y)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("PIDMonitor: the student's representation holds NaN")
               for m in messages)
    assert any(m.startswith("pid_gate: the student's representation of gate_0 holds NaN")
               for m in messages)
    assert np.isnan(net.history[-1, "train_distill"])
