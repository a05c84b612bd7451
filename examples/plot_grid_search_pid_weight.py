"""
Grid search over the PID weight and the method
==============================================

``PIDDistiller`` is a scikit-learn classifier: GridSearchCV can tune the distillation
weight α1 (``pid_weight``), the method and skorch's own parameters together. The frozen
teacher is shared between candidates, never copied.
"""
# %%
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier

from skpid import PIDDistiller
from skpid.distill.models import MLP

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
scaler = StandardScaler().fit(X_train)
common = dict(optimizer=torch.optim.Adam, lr=3e-3, batch_size=64, train_split=None,
              verbose=0, iterator_train__drop_last=True)
teacher = NeuralNetClassifier(MLP, module__hidden=64, criterion=torch.nn.CrossEntropyLoss,
                              max_epochs=20, **common).fit(scaler.transform(X_train), y_train)

pipe = make_pipeline(StandardScaler(), PIDDistiller(
    MLP, teacher, module__hidden=6, teacher_layers=["body"], student_layers=["body"],
    max_epochs=10, rounds=2, **common))
grid = GridSearchCV(pipe, {"piddistiller__method": ["none", "vid", "rid"],
                           "piddistiller__pid_weight": [1.0, 10.0]}, cv=3)
grid.fit(X_train, y_train)
for params, score in zip(grid.cv_results_["params"], grid.cv_results_["mean_test_score"]):
    print(f"{params['piddistiller__method']:5s} pid_weight={params['piddistiller__pid_weight']:5.1f}"
          f"  cv accuracy {score:.3f}")
print("best:", grid.best_params_, f"test accuracy {grid.score(X_test, y_test):.3f}")
