"""
What each method transfers: accuracy against the PID atoms
===========================================================

The same trained teacher distilled into the same student by every method skpid has,
from Hinton's KD to CRD: each student's test accuracy, and what PID says it took from
the teacher. ``Red(Y: T, S)`` is the task knowledge student and teacher share (what was
transferred), ``Uni(Y: T\\S)`` what only the teacher holds (what is left to distill),
measured on the test split between the teacher's last hidden layer and the student's.

The task is the tabular task of the quality benchmark (``skpid.distill.tasks``: 32
columns, 12 of them noise, 6 classes); the teacher, an MLP(64, 64), learns from the
full training split; the student, an MLP(12), from 25 rows per class. Every method uses
PIDDistiller's defaults (its recommended weight, the default training budget), paired
on the last hidden layers; the seeds are paired (the same data and initial weights for
every method of a seed).
"""
# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
from skorch import NeuralNetClassifier

from skpid import PIDDistiller, score_representations
from skpid.distill import METHODS
from skpid.distill.models import MLP
from skpid.distill.tasks import tabular_task

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # fewer seeds and epochs (CI)
SEEDS = range(1 if QUICK else 3)
# Small networks on a shared machine: one torch thread (FAQ).
torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=".*rows for 10 x 10 clusters.*")


def teacher_for(task, seed):
    torch.manual_seed(seed)
    return NeuralNetClassifier(
        MLP, module__n_features=32, module__hidden=64, module__depth=2,
        module__n_classes=6, criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam, lr=1e-2, max_epochs=5 if QUICK else 40,
        iterator_train__shuffle=True, train_split=None, verbose=0,
    ).fit(task.X_train, task.y_train).module_.eval()


# %%
# Every method, the same teacher and student
# ------------------------------------------
# ``max_epochs`` is lowered in the quick build only; everything else is the default.
rows = {name: {"acc": [], "red": [], "uni_t": []} for name in sorted(METHODS)}
for seed in SEEDS:
    task = tabular_task(seed)
    X, y = task.X_train[task.subset], task.y_train[task.subset]
    teacher = teacher_for(task, seed)
    for name in sorted(METHODS):
        net = PIDDistiller(MLP, teacher, method=name, module__n_features=32,
                           module__hidden=12, module__n_classes=6,
                           teacher_layers=["body"], student_layers=["body"],
                           random_state=seed, verbose=0,
                           **({"max_epochs": 20} if QUICK else {})).fit(X, y)
        t, s = net.representations(task.X_test)
        pid = score_representations(t, s, task.y_test, n_clusters=10, random_state=seed,
                                    bias_correction="permutation")
        rows[name]["acc"].append(net.score(task.X_test, task.y_test))
        rows[name]["red"].append(pid.redundancy)
        rows[name]["uni_t"].append(pid.unique_teacher)

print(f"{'method':8s} {'accuracy':>8s} {'Δ none':>7s} {'Red':>6s} {'UniT':>6s}")
base = np.mean(rows["none"]["acc"])
for name, r in sorted(rows.items(), key=lambda item: -np.mean(item[1]["acc"])):
    print(f"{name:8s} {np.mean(r['acc']):8.3f} {100 * (np.mean(r['acc']) - base):+7.1f} "
          f"{np.mean(r['red']):6.3f} {np.mean(r['uni_t']):6.3f}")

# %%
# Accuracy against what was transferred and what is left
# -------------------------------------------------------
# Methods that raise the shared task knowledge (``Red``) and lower what only the
# teacher holds (``UniT``) raise accuracy; the student trained alone (``none``) sits
# at the other end. Where a method lands off the trend, it moved the student in ways
# the teacher's representation does not explain.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True, layout="constrained")
for ax, atom, label in ((axes[0], "red", "Red(Y: T, S), bits (transferred)"),
                        (axes[1], "uni_t", "Uni(Y: T\\S), bits (left to distill)")):
    for name, r in rows.items():
        ax.scatter(np.mean(r[atom]), np.mean(r["acc"]), color="black" if name == "none"
                   else "tab:blue")
        ax.annotate(name, (np.mean(r[atom]), np.mean(r["acc"])), fontsize=8,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(label)
axes[0].set_ylabel("test accuracy")
fig.suptitle(f"Every method from one teacher ({len(SEEDS)} seed(s), test split)")
plt.show()
