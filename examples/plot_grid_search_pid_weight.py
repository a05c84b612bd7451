"""
Grid search over the PID weight and the method
==============================================

``PIDDistiller`` is a scikit-learn classifier: GridSearchCV can tune the distillation
weight α1 (``pid_weight``), the method and skorch's own parameters together. The frozen
teacher is shared between candidates, never copied.
"""
# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier

from skpid import PIDDistiller
from skpid.distill.models import MLP

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # shorter training (CI)
# Small networks gain nothing from more torch threads, and on a machine shared with
# other busy processes they run many times slower with them (FAQ, "Training is much
# slower than expected on a shared machine"): one thread.
torch.set_num_threads(1)

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
scaler = StandardScaler().fit(X_train)
common = dict(optimizer=torch.optim.Adam, lr=1e-2, batch_size=64, train_split=None,
              verbose=0, iterator_train__drop_last=True)
teacher = NeuralNetClassifier(MLP, module__hidden=64, criterion=torch.nn.CrossEntropyLoss,
                              max_epochs=20, **common).fit(scaler.transform(X_train), y_train)

weights = [1.0, 10.0] if QUICK else [1.0, 10.0, 100.0]
pipe = make_pipeline(StandardScaler(), PIDDistiller(
    MLP, teacher, module__hidden=6, teacher_layers=["body"], student_layers=["body"],
    max_epochs=6 if QUICK else 10, train_split=None, verbose=0, random_state=0))
# "none" ignores the weight: one candidate is enough.
grid = GridSearchCV(pipe, [{"piddistiller__method": ["none"]},
                           {"piddistiller__method": ["vid", "rid"],
                            "piddistiller__pid_weight": weights}], cv=3)
grid.fit(X_train, y_train)
for params, score in zip(grid.cv_results_["params"], grid.cv_results_["mean_test_score"]):
    weight = params.get("piddistiller__pid_weight", "-")
    print(f"{params['piddistiller__method']:5s} pid_weight={weight:>5}  cv accuracy {score:.3f}")
print("best:", grid.best_params_, f"test accuracy {grid.score(X_test, y_test):.3f}")

# %%
# The scores
# ----------
# Mean cross-validated accuracy (± one standard deviation over the folds) per method and
# weight.  The band is ``"none"`` (no distillation, ± one standard deviation): the
# baseline to beat.
results = grid.cv_results_
fig, ax = plt.subplots(figsize=(6, 3.8))
base = results["params"].index({"piddistiller__method": "none"})
mean, std = results["mean_test_score"][base], results["std_test_score"][base]
ax.axhspan(mean - std, mean + std, color="gray", alpha=0.2)
ax.axhline(mean, color="gray", label="none")
for method in ("vid", "rid"):
    rows = [i for i, p in enumerate(results["params"])
            if p["piddistiller__method"] == method]
    w = [results["params"][i]["piddistiller__pid_weight"] for i in rows]
    ax.errorbar(w, results["mean_test_score"][rows], yerr=results["std_test_score"][rows],
                marker="o", capsize=3, label=method)
ax.set_xscale("log")
ax.set_xticks(weights, [f"{w:g}" for w in weights])
ax.set_xlabel("pid_weight (α1)")
ax.set_ylabel("cv accuracy (3 folds)")
ax.set_title("MLP(hidden=6) student of an MLP(hidden=64) teacher")
ax.legend(title="method")
fig.tight_layout()
plt.show()
