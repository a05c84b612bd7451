"""
Distill a random forest into an MLP (tabular data)
==================================================

A fitted scikit-learn classifier can be a teacher: its ``log predict_proba`` serves as
logits for Hinton's KD. The student is an MLP inside a Pipeline with a StandardScaler.
The teacher sees what the student sees, so it is fit on the same scaled features.
We distill from a random forest and from a gradient-boosting model, and compare with
the same student trained on the labels alone.
"""
# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skpid import PIDDistiller
from skpid.distill.models import MLP

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # shorter training (CI)

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
scaler = StandardScaler().fit(X_train)
teachers = {
    "forest": RandomForestClassifier(n_estimators=100 if QUICK else 200, random_state=0),
    "boosting": HistGradientBoostingClassifier(max_iter=30 if QUICK else 100,
                                               random_state=0),
}
accuracy = {}
for name, teacher in teachers.items():
    teacher.fit(scaler.transform(X_train), y_train)
    score = teacher.score(scaler.transform(X_test), y_test)
    accuracy[f"{name}\n(teacher)"] = score
    print(f"{name} teacher: test accuracy {score:.3f}")

# %%
# The student, with and without distillation
# ------------------------------------------
# ``method="none"`` ignores the teacher, so it is trained once.
runs = [("none", "forest"), ("kd", "forest"), ("kd", "boosting")]
for method, teacher_name in runs:
    torch.manual_seed(0)
    student = make_pipeline(StandardScaler(), PIDDistiller(
        MLP, teachers[teacher_name], method=method, pid_weight=1.0, temperature=4.0,
        module__hidden=8,
        teacher_cache=True,  # tree ensembles are slow-ish; the training set is fixed
        optimizer=torch.optim.Adam, lr=3e-3, max_epochs=15 if QUICK else 30,
        batch_size=64, train_split=None, verbose=0))
    student.fit(X_train.astype(np.float32), y_train)
    label = "MLP, no KD" if method == "none" else f"MLP, KD from\n{teacher_name}"
    accuracy[label] = student.score(X_test, y_test)
    print(f"MLP(hidden=8) student, {method:4s} ({teacher_name} teacher): test accuracy "
          f"{accuracy[label]:.3f}")

# %%
# Test accuracy
# -------------
# KD is not guaranteed to help: a tree ensemble's class probabilities (vote fractions for
# a forest) can be a poor soft target for a small network, and ``pid_weight`` and
# ``temperature`` matter.  Always compare with the student trained without the teacher,
# and tune the two by cross-validation (see the grid-search example).
fig, ax = plt.subplots(figsize=(7, 3.2))
colors = ["tab:gray"] * len(teachers) + ["tab:blue"] * len(runs)
bars = ax.bar(list(accuracy), list(accuracy.values()), color=colors)
ax.bar_label(bars, fmt="%.3f", fontsize="small")
ax.set_ylim(min(accuracy.values()) - 0.05, 1.0)
ax.set_ylabel("test accuracy")
ax.set_title("Digits: tree-ensemble teachers and an MLP(hidden=8) student")
fig.tight_layout()
plt.show()
