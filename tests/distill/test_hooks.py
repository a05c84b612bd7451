"""Capturing representations by module path (``_hooks``): only the calling thread's
forward passes, and a clear error for a layer that does not run."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

from skpid import PIDDistiller
from skpid.distill import DistillationLoss
from skpid.distill._hooks import capture

from ._small import data, small_net  # noqa: F401 (data: a fixture)


def test_a_hook_records_only_its_own_threads_forward_passes():
    layer = nn.Linear(2, 2)
    registered, other_done = threading.Event(), threading.Event()
    seen = {}

    def other():
        registered.wait()
        layer(torch.full((1, 2), 100.0))  # runs while the first thread's hook is on
        other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with capture([layer]) as slots:
        registered.set()
        other_done.wait()
        seen["before"] = slots[0]
        out = layer(torch.zeros(1, 2))
    thread.join()
    assert seen["before"] is None
    assert torch.equal(slots[0], out)


class Consistent(DistillationLoss):
    """Checks that the teacher layer it receives belongs to the logits it receives
    (``logits = head(layer)``): a representation caught from another thread's batch
    would not."""

    uses_features = True

    def __init__(self, head=None):
        super().__init__()
        self.head = head

    def forward(self, s_logits, t_logits, s_feats, t_feats, y, phase="student", **kwargs):
        assert torch.allclose(self.head(t_feats[0]), t_logits, atol=1e-5), "mixed batches"
        return {"distill": s_logits.sum() * 0}


def test_unseeded_clones_sharing_a_teacher_in_threads_get_their_own_activations():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    errors = []

    def fit():
        try:
            PIDDistiller(nn.Sequential(nn.Linear(4, 2)), teacher,
                         method=Consistent(head=teacher[2]), teacher_layers=["1"],
                         student_layers=[None], max_epochs=3, batch_size=8,
                         train_split=None, verbose=0, teacher_check="ignore").fit(X, y)
        except AssertionError as exc:  # pragma: no cover - the failure this guards
            errors.append(exc)

    threads = [threading.Thread(target=fit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


class Skips(nn.Module):
    """``unused`` is a submodule that forward never calls."""

    def __init__(self):
        super().__init__()
        self.used = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.unused = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.used(x))


@pytest.mark.parametrize("side", ["teacher", "student"])
def test_a_layer_that_does_not_run_is_an_error_not_the_logits(side, data):
    X, y = data
    torch.manual_seed(0)
    layers = {"teacher_layers": ["used"], "student_layers": ["used"]}
    layers[f"{side}_layers"] = ["unused"]
    net = PIDDistiller(Skips(), Skips().eval(), method="fitnet", max_epochs=1,
                       train_split=None, verbose=0, **layers)
    with pytest.raises(ValueError, match=rf"{side}_layers\[0\] = 'unused': the layer exists "
                                         rf"in the {side} but did not run"):
        net.fit(X, y)
