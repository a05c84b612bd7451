"""A small distillation task with a nuisance part, for the demo and the benchmarks.

The input holds label-relevant columns next to pure-noise columns, so that besides a
trained teacher a *nuisance* teacher can be built: a network that sees only the noise
columns, I(Y;T) = 0 by construction. The student learns from a small per-class subset
of the training split, the regime where a teacher has something to give.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

__all__ = ["Select", "Task", "paper_init", "per_class_subset", "tabular_task"]


class Task(NamedTuple):
    """Splits of one seeded task; ``subset`` indexes the student's rows of the training
    split, ``noise`` selects the label-independent part of the input."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    subset: np.ndarray
    noise: slice


def tabular_task(seed: int, per_class: int = 25, n_samples: int = 4000) -> Task:
    """``make_classification`` with 6 classes and 32 standardised float32 columns: 8
    informative, 8 redundant (linear combinations of those), 4 repeated, 12 pure noise
    (the last 12). 40 % is the test split; the student subset has ``per_class`` rows of
    each class."""
    X, y = make_classification(n_samples=n_samples, n_features=32, n_informative=8,
                               n_redundant=8, n_repeated=4, n_classes=6,
                               n_clusters_per_class=2, class_sep=1.2, flip_y=0.02,
                               shuffle=False, random_state=seed)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, stratify=y,
                                              random_state=seed)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = (scaler.transform(X).astype(np.float32) for X in (X_tr, X_te))
    subset = per_class_subset(y_tr, per_class, np.random.default_rng(seed))
    return Task(X_tr, y_tr, X_te, y_te, subset, slice(20, 32))


def per_class_subset(y, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random rows of each class, in random order."""
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                          for c in np.unique(y)])
    return rng.permutation(idx)


class Select(nn.Module):
    """Feed only part of the input (``keep``: columns, or channels of images) to ``net``:
    a nuisance teacher when ``keep`` holds label-independent inputs."""

    def __init__(self, net: nn.Module, keep: slice):
        super().__init__()
        self.net = net
        self.keep = keep

    def forward(self, x):
        return self.net(x[:, self.keep])


def paper_init(module: nn.Module, seed: int) -> nn.Module:
    """Kaiming-uniform (fan_out, ReLU gain) weights and zero biases, as the paper's code
    initialises its untrained teachers; returned in eval mode. With PyTorch's default
    initialisation an untrained network's features are so small that no method is
    pulled anywhere."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            fan_out = m.weight.shape[0] * int(np.prod(m.weight.shape[2:]))
            bound = np.sqrt(2.0) * np.sqrt(3.0 / fan_out)
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
    return module.eval()
