"""
Distill tree ensembles into a small MLP (tabular data)
======================================================

A fitted scikit-learn classifier can be a teacher: its ``log predict_proba`` serves as
logits for Hinton's KD. The task is a generated table of 32 columns of mixed relevance
(8 informative, 8 redundant linear combinations of them, 4 repeated, 12 pure noise; 6
classes). The teachers, a random forest and a gradient-boosting model, learn from the
full training split (2,400 rows); the student, an MLP with 16 hidden units, gets only
25 rows per class (150 rows), the regime where a teacher has something to give. Its
accuracy with and without KD is compared over several seeds (the same data, subset and
initial weights for every variant of a seed), with 95 % intervals of the paired
differences.
"""
# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.model_selection import train_test_split

from skpid import PIDDistiller
from skpid.distill.models import MLP

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # fewer seeds and trees (CI)
SEEDS = range(2 if QUICK else 5)
# Small networks gain nothing from more torch threads, and on a machine shared with
# other busy processes they run many times slower with them (FAQ, "Training is much
# slower than expected on a shared machine"): one thread.
torch.set_num_threads(1)


def make_task(seed):
    X, y = make_classification(
        n_samples=4000, n_features=32, n_informative=8, n_redundant=8, n_repeated=4,
        n_classes=6, n_clusters_per_class=2, class_sep=1.2, flip_y=0.02,
        random_state=seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.4, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    subset = np.concatenate([rng.choice(np.flatnonzero(y_train == c), 25, replace=False)
                             for c in np.unique(y_train)])
    return X_train, y_train, X_test, y_test, subset


# %%
# Teachers on the full training split, students on 150 rows
# ---------------------------------------------------------
# Everything but the teacher, the method and ``train_split=None`` (all 150 rows train) is
# PIDDistiller's default (Adam, lr 1e-2, shuffled batches of 64, ``pid_weight="auto"``,
# temperature 4, up to 200 epochs stopped when the training cross-entropy stops
# improving). scikit-learn's float64 arrays are cast to the student's float32.
# ``method="none"`` ignores the teacher: the student trained on the labels alone.
accuracy = {"MLP alone": [], "KD from forest": [], "KD from boosting": []}
teacher_accuracy = {"forest": [], "boosting": []}
for seed in SEEDS:
    X_train, y_train, X_test, y_test, subset = make_task(seed)
    teachers = {
        "forest": RandomForestClassifier(n_estimators=100 if QUICK else 300,
                                         random_state=seed),
        "boosting": HistGradientBoostingClassifier(max_iter=50 if QUICK else 100,
                                                   random_state=seed),
    }
    for name, teacher in teachers.items():
        teacher.fit(X_train, y_train)
        teacher_accuracy[name].append(teacher.score(X_test, y_test))
    runs = {"MLP alone": ("none", "forest"), "KD from forest": ("kd", "forest"),
            "KD from boosting": ("kd", "boosting")}
    for label, (method, teacher_name) in runs.items():
        student = PIDDistiller(
            MLP, teachers[teacher_name], method=method, module__n_features=32,
            module__hidden=16, module__n_classes=6, train_split=None, verbose=0,
            random_state=seed,
            teacher_cache=True)  # tree ensembles are slow-ish; the training rows are fixed
        student.fit(X_train[subset], y_train[subset])
        accuracy[label].append(student.score(X_test, y_test))
    print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in accuracy.items())
          + " | teachers " + ", ".join(f"{k} {v[-1]:.3f}"
                                       for k, v in teacher_accuracy.items()))

# %%
# Paired differences to the student alone
# ---------------------------------------
# The seeds share everything but the teacher's signal, so the difference of each KD
# student to the student alone, seed by seed, is what KD adds; its 95 % t-interval over
# seeds is the error bar.
alone = np.array(accuracy["MLP alone"])
labels, means, halves = [], [], []
for label in ("KD from forest", "KD from boosting"):
    diff = 100 * (np.array(accuracy[label]) - alone)
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    labels.append(label)
    means.append(diff.mean())
    halves.append(half)
    print(f"{label}: {diff.mean():+.1f} ± {half:.1f} points over {len(diff)} seeds")

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
names = ["forest\n(teacher)", "boosting\n(teacher)"] + [k.replace(" from ", "\nfrom ")
                                                       for k in accuracy]
values = [np.mean(v) for v in teacher_accuracy.values()] + [np.mean(v) for v in
                                                            accuracy.values()]
spread = [np.std(v) for v in teacher_accuracy.values()] + [np.std(v) for v in
                                                           accuracy.values()]
left.bar(names, values, yerr=spread, capsize=3,
         color=["tab:gray", "tab:gray", "tab:blue", "tab:green", "tab:green"])
left.set_ylabel("test accuracy (mean ± sd over seeds)")
left.set_ylim(0, 1)
left.tick_params(axis="x", labelsize="small")
right.bar([k.replace(" from ", "\nfrom ") for k in labels], means, yerr=halves, capsize=4,
          color="tab:green")
right.axhline(0, color="black", linewidth=0.8)
right.set_ylabel("accuracy gain over the student alone\n(points, paired, 95 % CI)")
fig.suptitle("Tabular data: 150 training rows for the student, 2,400 for the teachers")
fig.tight_layout()
plt.show()

# %%
# The forest's vote fractions are smooth class probabilities even far from its training
# rows, and the student, which sees only 150 rows, learns from them where its own
# labels are silent. The boosting model is the more accurate teacher but its
# probabilities are sharper, so its soft targets carry less beyond the labels. KD is not
# guaranteed to help: always compare with the student trained without the teacher, and
# tune ``pid_weight`` and ``temperature`` by cross-validation (see the grid-search
# example).
