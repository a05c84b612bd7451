"""
Distill a CNN on digits images with RID
=======================================

A small CNN teacher, a narrower CNN student, one layer pair (the convolutional feature
maps). RID alternates teacher-filter and student phases; the history keeps every term.
"""
# %%
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier

from skpid import PIDDistiller
from skpid.distill.models import SmallCNN

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
common = dict(optimizer=torch.optim.Adam, lr=1e-2, max_epochs=15, batch_size=64,
              train_split=None, verbose=0, iterator_train__shuffle=True,
              iterator_train__drop_last=True)
teacher = NeuralNetClassifier(SmallCNN, module__width=16,
                              criterion=torch.nn.CrossEntropyLoss, **common)
teacher.fit(X_train, y_train)  # a fitted skorch net is a valid teacher as it is
print(f"teacher: test accuracy {teacher.score(X_test, y_test):.3f}")

net = PIDDistiller(SmallCNN, teacher, method="rid", pid_weight=10.0, rounds=3,
                   teacher_ratio=0.25, module__width=4, teacher_layers=["features"],
                   student_layers=["features"], **common)
net.fit(X_train, y_train)
print(f"RID student: test accuracy {net.score(X_test, y_test):.3f}")
print("per-epoch terms:", {k: round(v, 3) for k, v in net.history[-1].items()
                           if k.startswith("train_") and isinstance(v, float)})
print("share of teacher-filter steps per epoch:", net.history[:, "teacher_phase"])
