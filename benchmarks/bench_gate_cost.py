"""What ``pid_gate`` costs: fit time with the gate against the same fit without it.

For the trained teacher of each task of ``bench_distill_quality.py`` (the students' small
subsets and epochs) and for a larger fit (SmallCNN students on all 1,797 digits, the
defaults: 50 epochs, batches of 64, a validation split of 20 %), each method is fitted
gated and ungated in turn, ``--repeats`` times after a warm-up fit of each, in one
process, so that load changes hit both alike. Reported: median fit times, their ratio,
and the median time of one gate measurement (all pairs: forward passes over the
measured rows, the student's discretization, one BROJA PID per pair).

Run: ``python benchmarks/bench_gate_cost.py --repeats 3``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch
from skorch import NeuralNetClassifier
from sklearn.datasets import load_digits

import bench_distill_quality as quality
from _timing import machine
from skpid import PIDDistiller
from skpid.distill.models import SmallCNN


def timed_measurements(net_class):
    """Wrap ``_measure_gates`` to record the duration of each call."""
    durations = []
    measure = net_class._measure_gates

    def wrapper(self, dataset, names):
        began = time.perf_counter()
        try:
            return measure(self, dataset, names)
        finally:
            durations.append(time.perf_counter() - began)

    net_class._measure_gates = wrapper
    return durations


def quality_case(task, method):
    X_tr, y_tr, _, _, sub, makers, layers, student = quality.TASKS[task](0)
    teacher = makers["trained"]()

    def fit(gate):
        return quality.fit_student(teacher, layers["trained"], student, X_tr[sub],
                                   y_tr[sub], method, 0, quality.EPOCHS[task],
                                   pid_gate=gate)
    return f"{task} ({len(sub)} rows, {quality.EPOCHS[task]} epochs)", fit


def digits_case(method):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    teacher = NeuralNetClassifier(SmallCNN, module__width=16,
                                  criterion=torch.nn.CrossEntropyLoss,
                                  optimizer=torch.optim.Adam, lr=1e-2, max_epochs=5,
                                  train_split=None, verbose=0).fit(X, y).module_.eval()

    def fit(gate):
        return PIDDistiller(SmallCNN, teacher, method=method, module__width=4,
                            teacher_layers=["features"], student_layers=["features"],
                            verbose=0, random_state=0, pid_gate=gate).fit(X, y)
    return "digits, all rows (1,437 train / 360 valid, 50 epochs)", fit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="fitnet,rid")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(f"{machine()}; torch {torch.__version__}, 1 torch thread", flush=True)
    durations = timed_measurements(PIDDistiller)
    print("| case | method | ungated s | gated s | gated / ungated | one measurement ms |")
    print("|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        cases = [quality_case(task, method) for task in quality.TASKS] + [digits_case(method)]
        for name, fit in cases:
            fit(False), fit(True)  # warm-up
            times = {False: [], True: []}
            durations.clear()
            for _ in range(args.repeats):
                for gate in (False, True):
                    began = time.perf_counter()
                    fit(gate)
                    times[gate].append(time.perf_counter() - began)
            plain, gated = np.median(times[False]), np.median(times[True])
            print(f"| {name} | {method} | {plain:.2f} | {gated:.2f} | {gated / plain:.2f} | "
                  f"{1000 * np.median(durations):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
