"""
PID during training
===================

``PIDMonitor`` measures, every few epochs on the validation split, how the task
information splits between teacher and student representations; the plot helper draws
Red, UniT, UniS, Syn and validation accuracy over epochs (needs matplotlib).
"""
# %%
import numpy as np
import torch
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from skorch.dataset import ValidSplit

from skpid import PIDDistiller, PIDMonitor
from skpid.distill import plot_pid_history
from skpid.distill.models import SmallCNN

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
common = dict(optimizer=torch.optim.Adam, lr=1e-2, batch_size=64, verbose=0,
              iterator_train__shuffle=True, iterator_train__drop_last=True)
teacher = NeuralNetClassifier(SmallCNN, module__width=16, criterion=torch.nn.CrossEntropyLoss,
                              max_epochs=10, train_split=None, **common).fit(X, y)

net = PIDDistiller(SmallCNN, teacher, method="rid", pid_weight=10.0, rounds=3,
                   module__width=4, teacher_layers=["features"], student_layers=["features"],
                   max_epochs=12, train_split=ValidSplit(5, stratified=True, random_state=0),
                   callbacks=[PIDMonitor(every=2)], **common)
net.fit(X, y)
for row in net.history:
    if "valid_redundancy" in row:
        print(f"epoch {row['epoch']:2d}  acc {row['valid_acc']:.3f}  "
              f"Red {row['valid_redundancy']:.3f}  UniT {row['valid_unique_teacher']:.3f}  "
              f"UniS {row['valid_unique_student']:.3f}  Syn {row['valid_synergy']:.3f}")

try:
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipping the plot")
else:
    plot_pid_history(net)
    plt.tight_layout()
    plt.show()
