"""Seeded distiller configurations whose results are pinned (``test_goldens.py``).

Each configuration is fitted from scratch with ``random_state=0`` and summarised: a
checksum (sum and sum of squares, float64) of every tensor of the student's and the
criterion's ``state_dict``, the history numbers of every epoch, ``teacher_information_``,
the gates, and ``predict_proba`` on 20 rows. Every training setting is given explicitly,
so that a change of a default does not change these results; a change of how a method
trains does, and must be intended (re-record and say so in the commit).

Record the goldens (``tests/data/distill_goldens.json``) with::

    python -m tests.distill.goldens
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from skorch.dataset import ValidSplit

from skpid import PIDDistiller
from skpid.distill.models import MLP, SmallCNN

GOLDENS = Path(__file__).resolve().parents[1] / "data" / "distill_goldens.json"

# Training settings every configuration states, so that defaults can change freely.
BASE = dict(max_epochs=4, batch_size=32, lr=1e-2, optimizer=torch.optim.Adam,
            iterator_train__shuffle=True, random_state=0, verbose=0,
            pid_weight="auto", teacher_check="warn", callbacks__print_log=None)
SPLIT = ValidSplit(5, stratified=True)
MLP_PAIR = dict(teacher_layers=["body"], student_layers=["body"])

CONFIGS = {
    "none_split": dict(method="none", train_split=SPLIT),
    "kd_nosplit": dict(method="kd", train_split=None),
    "fitnet_split": dict(method="fitnet", train_split=SPLIT, **MLP_PAIR),
    "vid_nosplit_ignore": dict(method="vid", train_split=None, teacher_check="ignore",
                               **MLP_PAIR),
    "rid_split_raise": dict(method="rid", train_split=SPLIT, teacher_check="raise",
                            **MLP_PAIR),
    "ted_nosplit": dict(method="ted", train_split=None, **MLP_PAIR),
    "rid_kd_weight": dict(method="rid", kd_weight=0.5, train_split=None, **MLP_PAIR),
    "rid_logits": dict(method="rid", train_split=SPLIT),
    "fitnet_gate_split": dict(method="fitnet", pid_gate=True, pid_gate_every=2,
                              train_split=SPLIT, **MLP_PAIR),
    "kd_gate_nosplit": dict(method="kd", pid_gate=True, pid_gate_every=2,
                            train_split=None),
    "rid_gate_nosplit_ignore": dict(method="rid", pid_gate=True, pid_gate_every=3,
                                    teacher_check="ignore", train_split=None, **MLP_PAIR),
    "vid_nuisance_warn": dict(method="vid", teacher="nuisance", train_split=SPLIT,
                              **MLP_PAIR),
    "rid_cnn_split": dict(method="rid", images=True, train_split=SPLIT,
                          teacher_layers=["features"], student_layers=["features"]),
}


def data(images: bool = False):
    """300 digits rows (float32 in [0, 1]), 64 columns of noise appended for the
    nuisance teacher; images as (N, 1, 8, 8)."""
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))[:300]
    X, y = (X[idx] / 16.0).astype(np.float32), y[idx].astype(np.int64)
    if images:
        return X.reshape(-1, 1, 8, 8), y
    noise = np.random.default_rng(1).normal(size=X.shape).astype(np.float32)
    return np.concatenate([X, noise], axis=1), y


class _Columns(torch.nn.Module):
    """``net`` on a slice of the columns: the digits (a teacher) or the noise (a
    nuisance teacher)."""

    def __init__(self, net, keep):
        super().__init__()
        self.net = net
        self.keep = keep

    def forward(self, x):
        return self.net(x[:, self.keep])


def teacher(kind: str, X, y):
    """A teacher trained by plain full-batch Adam (deterministic), in eval mode."""
    torch.manual_seed(0)
    if kind == "cnn":
        module, inputs = SmallCNN(width=8), torch.as_tensor(X)
    else:
        keep = slice(0, 64) if kind == "trained" else slice(64, 128)
        module, inputs = _Columns(MLP(64, hidden=32), keep), torch.as_tensor(X)
    if kind != "nuisance":
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
        targets = torch.as_tensor(y)
        for _ in range(60):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(module(inputs), targets).backward()
            optimizer.step()
    return module.eval()


def fit(name: str) -> PIDDistiller:
    config = dict(CONFIGS[name])
    images = config.pop("images", False)
    kind = config.pop("teacher", "cnn" if images else "trained")
    X, y = data(images)
    if images:
        student = dict(module=SmallCNN, module__width=4)
        if "teacher_layers" not in config:
            config.update(teacher_layers=None, student_layers=None)
    else:
        student = dict(module=MLP, module__n_features=128, module__hidden=8)
        if "teacher_layers" in config:  # the teacher's MLP sits in _Columns.net
            config["teacher_layers"] = [f"net.{p}" for p in config["teacher_layers"]]
    net = PIDDistiller(teacher=teacher(kind, X, y), **student, **{**BASE, **config})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(X, y)
    return net


def _checksums(module: torch.nn.Module) -> dict:
    out = {}
    for key, value in module.state_dict().items():
        v = value.detach().double().cpu()
        out[key] = [float(v.sum()), float((v * v).sum())]
    return out


def summary(net: PIDDistiller) -> dict:
    """What the golden test compares: numbers only, as plain floats."""
    X, _ = data(isinstance(net.module_, SmallCNN))
    history = []
    for row in net.history:
        history.append({k: float(v) for k, v in sorted(row.items())
                        if k not in ("dur", "batches") and isinstance(v, (int, float))
                        and not isinstance(v, bool)})
    gates = {k: float(g.gate) for k, g in sorted(getattr(net, "pid_gates_", {}).items())}
    return {
        "student": _checksums(net.module_),
        "method": _checksums(net.method_),
        "history": history,
        "teacher_information": {k: float(v)
                                for k, v in sorted(net.teacher_information_.items())},
        "gates": gates,
        "proba": net.predict_proba(X[:20]).astype(float).round(12).tolist(),
    }


def record() -> None:
    goldens = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "torch": torch.__version__.split("+")[0],
               "configs": {name: summary(fit(name)) for name in CONFIGS}}
    GOLDENS.write_text(json.dumps(goldens, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    record()
