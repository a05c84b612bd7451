"""Epoch time of PIDDistiller against a hand-written PyTorch loop, and of RID against none.

All sides train the same model (SmallCNN on digits images, batch 64) with the same
optimizer (SGD, momentum 0.9) on the same batches (no shuffling, same order) in one
process; each runs ``--epochs`` epochs after one warm-up epoch, and we report the median
epoch time and ratios:

- ``none / hand``: PIDDistiller(method="none") vs a plain loop over skorch's dataset
  (what skorch iterates: the same batches). Target ≤ 1.15.
- ``none / hand (TensorDataset)``: the same against the loop most people write.
- ``skorch / hand``: plain skorch NeuralNetClassifier, to separate skorch's own cost.
- ``rid / none``: RID on one layer pair (feature maps) with a teacher twice as wide.
  Target ≤ 2.5.

Run: ``python benchmarks/bench_overhead.py --epochs 7``
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from skorch.dataset import Dataset
from torch.utils.data import DataLoader, TensorDataset

from skpid import PIDDistiller
from skpid.distill.models import SmallCNN

BATCH = 64


def data():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), y.astype(np.int64)


def optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def hand_loop(X, y, epochs, width, tensor_dataset):
    torch.manual_seed(0)
    model = SmallCNN(width=width)
    opt = optimizer(model.parameters())
    ds = TensorDataset(torch.as_tensor(X), torch.as_tensor(y)) if tensor_dataset \
        else Dataset(X, y)
    loader = DataLoader(ds, batch_size=BATCH, shuffle=False)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss.item()  # skorch reads every batch loss too
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def net_epochs(net, X, y):
    net.fit(X, y)
    return float(np.median(net.history[1:, "dur"]))


def skorch_common(epochs):
    return dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.05,
                batch_size=BATCH, max_epochs=epochs + 1, train_split=None, verbose=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--width", type=int, default=16, help="student width")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"Python {platform.python_version()}, torch {torch.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; {args.epochs} timed epochs after 1 warm-up, median")
    X, y = data()
    torch.manual_seed(1)
    teacher = SmallCNN(width=2 * args.width).eval()
    results = {}
    results["hand (skorch Dataset)"] = hand_loop(X, y, args.epochs, args.width, False)
    results["hand (TensorDataset)"] = hand_loop(X, y, args.epochs, args.width, True)
    torch.manual_seed(0)
    results["skorch NeuralNetClassifier"] = net_epochs(NeuralNetClassifier(
        SmallCNN, module__width=args.width, criterion=torch.nn.CrossEntropyLoss,
        **skorch_common(args.epochs)), X, y)
    torch.manual_seed(0)
    results["PIDDistiller none"] = net_epochs(PIDDistiller(
        SmallCNN, teacher, method="none", module__width=args.width,
        **skorch_common(args.epochs)), X, y)
    torch.manual_seed(0)
    results["PIDDistiller rid"] = net_epochs(PIDDistiller(
        SmallCNN, teacher, method="rid", module__width=args.width, rounds=2,
        teacher_layers=["features"], student_layers=["features"],
        **skorch_common(args.epochs)), X, y)
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
        "rid / none": (results["PIDDistiller rid"] / results["PIDDistiller none"], 2.5),
    }
    print("\n| ratio | value | target |\n|---|---|---|")
    for name, (value, target) in ratios.items():
        verdict = "" if target is None else (f"≤ {target} " + ("met" if value <= target
                                                                 else "NOT met"))
        print(f"| {name} | {value:.2f} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
