"""Epoch time of PIDDistiller against a hand-written PyTorch loop, and of RID against none.

All sides train the same model (SmallCNN on digits images, batch 64) with the same
optimizer (SGD, momentum 0.9) on the same batches (no shuffling, same order) in one
process, interleaved: one epoch of each side in turn, ``--epochs`` rounds after a warm-up
round, so that load changes on a shared machine hit all sides alike. We report median
epoch times and their ratios:

- ``none / hand``: PIDDistiller(method="none") vs a plain loop over skorch's dataset
  (what skorch iterates: the same batches). Target ≤ 1.15.
- ``none / hand (TensorDataset)``: the same against the loop most people write.
- ``skorch / hand``: plain skorch NeuralNetClassifier, to separate skorch's own cost.
- ``rid / none``: RID on one layer pair (feature maps), with a teacher of the student's
  size, one twice as wide (4× the convolution cost: its forward pass alone costs more than
  the student's forward and backward), and the latter with ``teacher_cache=True``.
  Target ≤ 2.5.
- ``kd / none (forest teacher)``: KD from a 300-tree random forest into an MLP, with and
  without ``teacher_cache``: where the cache pays (the forest's ``predict_proba`` costs
  more than the student's step).

Run: ``python benchmarks/bench_overhead.py --epochs 7``
"""

import argparse
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from skorch import NeuralNetClassifier
from skorch.dataset import Dataset
from torch.utils.data import DataLoader, TensorDataset

from _timing import machine
from skpid import PIDDistiller
from skpid.distill.models import MLP, SmallCNN

BATCH = 64


def data():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), y.astype(np.int64)


def optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


class HandLoop:
    """The plain PyTorch loop; ``epoch()`` trains one epoch and returns its duration."""

    def __init__(self, X, y, width, tensor_dataset):
        torch.manual_seed(0)
        self.model = SmallCNN(width=width)
        self.opt = optimizer(self.model.parameters())
        ds = TensorDataset(torch.as_tensor(X), torch.as_tensor(y)) if tensor_dataset \
            else Dataset(X, y)
        self.loader = DataLoader(ds, batch_size=BATCH, shuffle=False)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(self):
        start = time.perf_counter()
        self.model.train()
        for xb, yb in self.loader:
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(xb), yb)
            loss.backward()
            self.opt.step()
            loss.item()  # skorch reads every batch loss too
        return time.perf_counter() - start


class NetEpochs:
    """A skorch net trained one epoch per call (``partial_fit``); skorch's own epoch
    timer (on_epoch_begin → on_epoch_end) gives the duration."""

    def __init__(self, net, X, y):
        torch.manual_seed(0)
        self.net, self.X, self.y = net, X, y

    def epoch(self):
        self.net.partial_fit(self.X, self.y)
        return self.net.history[-1, "dur"]


def skorch_common():
    return dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.05,
                batch_size=BATCH, max_epochs=1, train_split=None, verbose=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--width", type=int, default=16, help="student width")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{machine()}; torch {torch.__version__}, torch threads "
          f"{torch.get_num_threads()}; {args.epochs} timed epochs after 1 warm-up, median")
    X, y = data()
    torch.manual_seed(1)
    teacher = SmallCNN(width=2 * args.width).eval()
    same_size = SmallCNN(width=args.width).eval()
    sides = {
        "hand (skorch Dataset)": HandLoop(X, y, args.width, tensor_dataset=False),
        "hand (TensorDataset)": HandLoop(X, y, args.width, tensor_dataset=True),
        "skorch NeuralNetClassifier": NetEpochs(NeuralNetClassifier(
            SmallCNN, module__width=args.width, criterion=torch.nn.CrossEntropyLoss,
            **skorch_common()), X, y),
        "PIDDistiller none": NetEpochs(PIDDistiller(
            SmallCNN, teacher, method="none", module__width=args.width,
            **skorch_common()), X, y),
    }
    for label, t, cache in (("same-size teacher", same_size, False),
                            ("2x-wide teacher", teacher, False),
                            ("2x-wide teacher, cached", teacher, True)):
        sides[f"PIDDistiller rid ({label})"] = NetEpochs(PIDDistiller(
            SmallCNN, t, method="rid", module__width=args.width, rounds=2,
            teacher_layers=["features"], student_layers=["features"], teacher_cache=cache,
            **skorch_common()), X, y)
    # teacher_cache where it is documented to help: a teacher slower than hashing and
    # stacking rows, here a 300-tree random forest (KD from its log-probabilities) for an
    # MLP student on the flat images
    X_flat = X.reshape(len(X), -1)
    forest = RandomForestClassifier(n_estimators=300, random_state=0).fit(X_flat, y)
    for label, cache in (("forest teacher", False), ("forest teacher, cached", True)):
        sides[f"PIDDistiller kd ({label})"] = NetEpochs(PIDDistiller(
            MLP, forest, method="kd", module__hidden=32, teacher_cache=cache,
            **skorch_common()), X_flat, y)
    sides["PIDDistiller none (MLP)"] = NetEpochs(PIDDistiller(
        MLP, forest, method="none", module__hidden=32, **skorch_common()), X_flat, y)
    # Interleave: one epoch of each side per repetition, so that load changes on a
    # shared machine hit all sides alike; the first repetition is the warm-up.
    times = {name: [] for name in sides}
    for _ in range(args.epochs + 1):
        for name, side in sides.items():
            times[name].append(side.epoch())
    results = {name: float(np.median(t[1:])) for name, t in times.items()}
    print("\n| loop | median epoch (ms) |\n|---|---|")
    for name, value in results.items():
        print(f"| {name} | {1e3 * value:.1f} |")
    ratios = {
        "none / hand (same batches, skorch Dataset)":
            (results["PIDDistiller none"] / results["hand (skorch Dataset)"], 1.15),
        "none / hand (TensorDataset)":
            (results["PIDDistiller none"] / results["hand (TensorDataset)"], None),
        "skorch / hand (skorch Dataset)":
            (results["skorch NeuralNetClassifier"] / results["hand (skorch Dataset)"], None),
        "none / skorch": (results["PIDDistiller none"]
                          / results["skorch NeuralNetClassifier"], None),
    }
    for label in ("same-size teacher", "2x-wide teacher", "2x-wide teacher, cached"):
        ratios[f"rid / none ({label})"] = (results[f"PIDDistiller rid ({label})"]
                                           / results["PIDDistiller none"], 2.5)
    for label in ("forest teacher", "forest teacher, cached"):
        ratios[f"kd / none ({label}, MLP student)"] = (
            results[f"PIDDistiller kd ({label})"] / results["PIDDistiller none (MLP)"], None)
    print("\n| ratio | value | target |\n|---|---|---|")
    for name, (value, target) in ratios.items():
        verdict = "" if target is None else (f"≤ {target} " + ("met" if value <= target
                                                                 else "NOT met"))
        print(f"| {name} | {value:.2f} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
