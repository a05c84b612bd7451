"""The nuisance-teacher experiment at CPU scale, shared by the demo and the benchmark.

Teacher: :class:`~skpid.distill.models.SmallCNN`; student: a narrower SmallCNN; one layer
pair (the convolutional feature maps). PID is measured on held-out data between the
teacher's and the student's feature maps with :func:`skpid.score_representations`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier

from .._estimator import score_representations
from ._distiller import PIDDistiller
from .models import SmallCNN

# Distillation weights (α1) per method: the paper's values for VID (100) and RID (10);
# KD and FitNets at the usual 1.
WEIGHTS = {"none": 0.0, "kd": 1.0, "fitnet": 1.0, "vid": 100.0, "rid": 10.0, "ted": 10.0,
           "rid-holdout": 10.0}
TRAIN = dict(optimizer=torch.optim.Adam, lr=1e-2, batch_size=64, verbose=0,
             train_split=None, iterator_train__shuffle=True, iterator_train__drop_last=True)


def digits_images(seed: int, test_size: float = 0.33):
    """Digits as (N, 1, 8, 8) float32 images in [0, 1]; stratified split."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return train_test_split(X, y.astype(np.int64), test_size=test_size, stratify=y,
                            random_state=seed)


def train_teacher(X, y, *, width: int = 16, epochs: int = 15, seed: int = 0,
                  n_classes: int = 10, in_channels: int = 1) -> torch.nn.Module:
    """A SmallCNN trained with cross-entropy (the teacher)."""
    torch.manual_seed(seed)
    net = NeuralNetClassifier(SmallCNN, module__width=width, module__n_classes=n_classes,
                              module__in_channels=in_channels,
                              criterion=torch.nn.CrossEntropyLoss, max_epochs=epochs,
                              **TRAIN)
    return net.fit(X, y).module_.eval()


def untrained_teacher(*, width: int = 16, seed: int = 0, n_classes: int = 10,
                      in_channels: int = 1) -> torch.nn.Module:
    """The same architecture, randomly initialised and never trained."""
    torch.manual_seed(10_000 + seed)
    return SmallCNN(width=width, n_classes=n_classes, in_channels=in_channels).eval()


def distill(teacher, method: str, X, y, *, epochs: int = 15, seed: int = 0,
            **params) -> PIDDistiller:
    """Fit a student from ``teacher`` with ``method`` (seeded). By default a
    SmallCNN(width=4) for 10 classes of one-channel images, paired on ``"features"``;
    ``params`` override any PIDDistiller parameter."""
    torch.manual_seed(seed)
    student = {} if "module" in params else {"module": SmallCNN, "module__width": 4}
    settings = {**TRAIN, **student, "rounds": 3, "teacher_layers": ["features"],
                "student_layers": ["features"], "pid_weight": WEIGHTS.get(method, 1.0),
                **params}
    method_args = {}
    if method == "rid-holdout":  # RID whose heads learn from a held-out half only
        method, method_args = "rid", {"method__filter_holdout": 0.5}
    return PIDDistiller(teacher=teacher, method=method, max_epochs=epochs,
                        **{**settings, **method_args}).fit(X, y)


def task_information(module, X, y, *, layer: str = "features", n_clusters: int = 10,
                     seed: int = 0) -> float:
    """I(Y;T) in bits of a torch module's representation at ``layer`` (same pipeline as
    :func:`evaluate`): near 0 for a real nuisance teacher."""
    from ._hooks import capture, resolve_layers
    module.eval()
    with torch.no_grad(), capture(resolve_layers(module, [layer], "layer")) as slots:
        module(torch.as_tensor(X))
    t = slots[0].numpy()
    return score_representations(t, t, y, n_clusters=n_clusters,
                                 random_state=seed).mi_teacher


def evaluate(net: PIDDistiller, X, y, *, n_clusters: int = 10, seed: int = 0) -> dict:
    """Test accuracy and the PID (bits) of the labels into teacher and student features."""
    t, s = net.representations(X)
    r = score_representations(t, s, y, n_clusters=n_clusters, random_state=seed)
    return {"acc": float(np.mean(net.predict(X) == y)), "red": r.redundancy,
            "uni_t": r.unique_teacher, "uni_s": r.unique_student, "syn": r.synergy,
            "mi_t": r.mi_teacher, "mi_s": r.mi_student}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start
