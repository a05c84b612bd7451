"""
Distill a random forest into an MLP (tabular data)
==================================================

A fitted scikit-learn classifier can be a teacher: its ``log predict_proba`` serves as
logits for Hinton's KD. The student is an MLP inside a Pipeline with a StandardScaler.
The teacher sees what the student sees, so it is fit on the same scaled features.
"""
# %%
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skpid import PIDDistiller
from skpid.distill.models import MLP

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
scaler = StandardScaler().fit(X_train)
forest = RandomForestClassifier(n_estimators=200, random_state=0)
forest.fit(scaler.transform(X_train), y_train)
print(f"forest teacher: test accuracy {forest.score(scaler.transform(X_test), y_test):.3f}")

for method in ("none", "kd"):
    torch.manual_seed(0)
    student = make_pipeline(StandardScaler(), PIDDistiller(
        MLP, forest, method=method, pid_weight=1.0, temperature=4.0, module__hidden=8,
        teacher_cache=True,  # the forest is slow-ish; the training set is fixed
        optimizer=torch.optim.Adam, lr=3e-3, max_epochs=30, batch_size=64,
        train_split=None, verbose=0))
    student.fit(X_train.astype(np.float32), y_train)
    print(f"MLP(hidden=8) student, {method:4s}: test accuracy "
          f"{student.score(X_test, y_test):.3f}")
