"""What the in-training measurements cost: ``teacher_check`` and ``pid_gate`` against the
same fit without them.

Cases:

- ``cifar`` (issue 23's target): CIFAR-shaped synthetic data (2,048 images 3×32×32 of 10
  classes: a class template, shifted, scaled and noised), a ResNet-like teacher of about
  0.5M parameters trained for a few epochs, a small CNN student (width 8), RID on a
  feature-map pair (the teacher's second stage, 64×16×16, against the student's 16×16
  maps), 10 epochs, no validation split. Timed: the fit with ``teacher_check="warn"``
  and ``pid_gate=True, pid_gate_every=5`` against ``teacher_check="ignore",
  pid_gate=False``. Target: ≤ 1.06 times the CPU time.
- ``quality``: the trained teacher of each task of ``bench_distill_quality.py`` (its
  students' small subsets and epochs), gated against ungated.

Each fit runs ``--repeats`` times after a warm-up fit of each variant, alternating, in
one process, so that load changes hit both alike; reported are the medians of process
CPU time and of wall time, their ratios, and the median time of one gate measurement.

Run: ``python benchmarks/bench_gate_cost.py --repeats 3`` (``--cases cifar``;
``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch
from skorch import NeuralNetClassifier
from torch import nn

import bench_distill_quality as quality
from _timing import machine
from skpid import PIDDistiller
from skpid.distill import PIDGate


class TimedGate(PIDGate):
    """The default gate, recording how long each of its measurements takes."""

    durations: list = []

    def _measure(self, net, data, dataset, gates):
        began = time.perf_counter()
        try:
            return super()._measure(net, data, dataset, gates)
        finally:
            self.durations.append(time.perf_counter() - began)


# ----------------------------------------------------------------------------- cifar
class Block(nn.Module):
    """A residual block: two 3×3 convolutions with BatchNorm, a 1×1 shortcut when the
    shape changes."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                   nn.BatchNorm2d(c_out)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class ResNetLike(nn.Module):
    """Stem (32), stages of 32 (32×32), 64 (16×16, ``stage2``) and 96 (8×8) channels,
    global pooling, a linear head: 0.46M parameters."""

    def __init__(self, n_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU())
        self.stage1 = Block(32, 32, 1)
        self.stage2 = nn.Sequential(Block(32, 64, 2), Block(64, 64, 1))
        self.stage3 = nn.Sequential(Block(64, 96, 2), Block(96, 96, 1))
        self.head = nn.Linear(96, n_classes)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


class SmallStudent(nn.Module):
    """Two convolutions of width 8 with BatchNorm, the second of stride 2
    (``features``: 8×16×16), global pooling, a linear head."""

    def __init__(self, width=8, n_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def cifar_like(n=2048, seed=0):
    """``n`` images 3×32×32 of 10 classes: a smooth random template per class, shifted
    by up to 4 pixels, scaled and noised."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(size=(10, 3, 8, 8))
    templates = np.kron(templates, np.ones((1, 1, 4, 4)))  # 32×32, blocky
    y = rng.integers(0, 10, size=n)
    shifts = rng.integers(-4, 5, size=(n, 2))
    X = np.stack([np.roll(templates[c], tuple(s), axis=(1, 2)) for c, s in zip(y, shifts)])
    X = X * rng.uniform(0.5, 1.5, size=(n, 1, 1, 1)) + rng.normal(0, 1.0, size=X.shape)
    return X.astype(np.float32), y.astype(np.int64)


def cifar_case(epochs=10, teacher_epochs=3, n=2048):
    X, y = cifar_like(n)
    torch.manual_seed(0)
    teacher = NeuralNetClassifier(ResNetLike, criterion=nn.CrossEntropyLoss,
                                  optimizer=torch.optim.Adam, lr=1e-3, batch_size=64,
                                  max_epochs=teacher_epochs, train_split=None, verbose=0,
                                  iterator_train__shuffle=True).fit(X, y).module_.eval()
    n_params = sum(p.numel() for p in teacher.parameters())

    def fit(measured):
        settings = (dict(teacher_check="warn", pid_gate=True, pid_gate_every=5,
                         callbacks__pid_gate=TimedGate()) if measured else
                    dict(teacher_check="ignore", pid_gate=False))
        return PIDDistiller(SmallStudent, teacher, method="rid", teacher_layers=["stage2"],
                            student_layers=["features"], max_epochs=epochs,
                            train_split=None, callbacks__early_stopping=None, verbose=0,
                            random_state=0, **settings).fit(X, y)
    return (f"cifar-like ({n} images 3x32x32, teacher {n_params / 1e6:.2f}M parameters, "
            f"RID on 64x16x16 maps, {epochs} epochs, no split)"), fit


def quality_case(task, method):
    X_tr, y_tr, _, _, sub, makers, layers, student = quality.TASKS[task](0)
    teacher = makers["trained"]()

    def fit(measured):
        return quality.fit_student(teacher, layers["trained"], student, X_tr[sub],
                                   y_tr[sub], method, 0, quality.EPOCHS[task],
                                   pid_gate=measured,
                                   **({"callbacks__pid_gate": TimedGate()} if measured
                                      else {}))
    return f"{task} ({len(sub)} rows, {quality.EPOCHS[task]} epochs), {method}", fit


def time_case(fit, repeats):
    """Medians of CPU and wall time of each variant, alternated after a warm-up."""
    fit(False), fit(True)
    cpu, wall = {False: [], True: []}, {False: [], True: []}
    TimedGate.durations.clear()
    for _ in range(repeats):
        for measured in (False, True):
            began, began_cpu = time.perf_counter(), time.process_time()
            fit(measured)
            wall[measured].append(time.perf_counter() - began)
            cpu[measured].append(time.process_time() - began_cpu)
    return ({k: float(np.median(v)) for k, v in cpu.items()},
            {k: float(np.median(v)) for k, v in wall.items()},
            float(np.median(TimedGate.durations)) if TimedGate.durations else float("nan"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="cifar,quality")
    parser.add_argument("--methods", default="fitnet,rid",
                        help="methods of the quality cases")
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(f"{machine()}; torch {torch.__version__}, 1 torch thread", flush=True)
    cases = []
    if "cifar" in args.cases:
        cases.append(cifar_case(epochs=2, teacher_epochs=1, n=256) if args.quick
                     else cifar_case())
    if "quality" in args.cases and not args.quick:
        for method in args.methods.split(","):
            cases += [quality_case(task, method) for task in quality.TASKS]
    repeats = 1 if args.quick else args.repeats
    print("| case | CPU s without | CPU s with | CPU ratio | wall ratio | one gate "
          "measurement ms |\n|---|---|---|---|---|---|")
    ratios = []
    for name, fit in cases:
        cpu, wall, gate = time_case(fit, repeats)
        ratio = cpu[True] / cpu[False]
        ratios.append((name, ratio))
        print(f"| {name} | {cpu[False]:.2f} | {cpu[True]:.2f} | {ratio:.3f} | "
              f"{wall[True] / wall[False]:.3f} | {1000 * gate:.0f} |", flush=True)
    for name, ratio in ratios:
        if name.startswith("cifar") and not args.quick:
            print(f"\ntarget (check + gate ≤ 1.06 × CPU): {ratio:.3f} "
                  f"{'ok' if ratio <= 1.06 else 'FAILS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
