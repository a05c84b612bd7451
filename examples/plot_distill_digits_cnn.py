"""
Distill a CNN on digits images with RID
=======================================

A small CNN teacher, a narrower CNN student, one layer pair (the convolutional feature
maps). RID alternates teacher-filter and student phases; the history keeps every term.
"""
# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier

from skpid import PIDDistiller
from skpid.distill.models import SmallCNN

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # shorter training (CI)
# Small networks gain nothing from more torch threads, and on a machine shared with
# other busy processes they run many times slower with them (FAQ, "Training is much
# slower than expected on a shared machine"): one thread.
torch.set_num_threads(1)
EPOCHS = 8 if QUICK else 15

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
teacher = NeuralNetClassifier(SmallCNN, module__width=16,
                              criterion=torch.nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=1e-2, max_epochs=EPOCHS,
                              batch_size=64, iterator_train__shuffle=True,
                              train_split=None, verbose=0)
teacher.fit(X_train, y_train)  # a fitted skorch net is a valid teacher as it is
print(f"teacher: test accuracy {teacher.score(X_test, y_test):.3f}")

# PIDDistiller's defaults: Adam, lr 1e-2, shuffled batches of 64, RID with the paper's
# pid_weight 10, 10 rounds and teacher_ratio 0.25.
net = PIDDistiller(SmallCNN, teacher, method="rid", module__width=4,
                   teacher_layers=["features"], student_layers=["features"],
                   max_epochs=EPOCHS, train_split=None, verbose=0, random_state=0)
net.fit(X_train, y_train)
print(f"RID student: test accuracy {net.score(X_test, y_test):.3f}")
print("per-epoch terms:", {k: round(v, 3) for k, v in net.history[-1].items()
                           if k.startswith("train_") and isinstance(v, float)})
print("share of teacher-filter steps per epoch:", net.history[:, "teacher_phase"])

# %%
# The loss terms per batch
# ------------------------
# Shaded: RID's teacher phase (the teacher filters and heads learn from ``filter_ce``
# and, after the first round, ``distance``; the student takes cross-entropy steps on
# the same batches).  Elsewhere the student phase: the student learns from its
# cross-entropy ``ce`` plus ``pid_weight`` times ``distill``, the filter distance
# scaled by the information ``gate`` (the share of the label entropy the filtered
# teacher explains on rows its head never fit).
batches = [b for epoch in net.history for b in epoch["batches"]]
phase = np.array([b["phase"] == "teacher" for b in batches])
steps = np.arange(len(batches))
fig, ax = plt.subplots(figsize=(8, 3.5))
for term, color in (("train_ce", "tab:blue"), ("train_distill", "tab:green"),
                    ("train_filter_ce", "tab:red"), ("train_distance", "tab:orange"),
                    ("train_gate", "tab:purple")):
    values = np.array([b.get(term, np.nan) for b in batches])
    ax.plot(steps, values, ".", markersize=3, color=color, label=term.removeprefix("train_"))
ax.fill_between(steps, 0, 1, where=phase, transform=ax.get_xaxis_transform(),
                color="gray", alpha=0.2, label="teacher phase")
ax.set_xlabel("optimizer step")
ax.set_ylabel("loss term")
ax.set_title(f"RID on digits: {net.rounds} rounds, teacher_ratio={net.teacher_ratio}")
ax.legend(fontsize="small", ncol=3)
fig.tight_layout()
plt.show()
