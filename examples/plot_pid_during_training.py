"""
PID during training
===================

``PIDMonitor`` measures, every few epochs on the validation split, how the task
information splits between teacher and student representations; the plot helper draws
Red, UniT, UniS, Syn and validation accuracy over epochs (needs matplotlib).

We distill the same student with RID from two teachers of the same architecture: one
trained on the task, and one left untrained (random weights).  Things to compare between
the two panels: the teacher's task information I(Y;T) = Red + UniT (printed), which is
fixed during training because the teacher is frozen; how it splits between transferred
knowledge (Red) and knowledge left to distill (UniT) as the student learns; and the
student's own unique information (UniS).  Random convolutions of digit images are not a
nuisance: the untrained teacher's features still hold much task information, only less
than the trained teacher's.  (For a teacher that sees only noise, I(Y;T), Red and UniT
are 0: see ``benchmarks/bench_distill_quality.py``.)
"""
# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from skorch.dataset import ValidSplit

from skpid import PIDDistiller, PIDMonitor
from skpid.distill import plot_pid_history
from skpid.distill.models import SmallCNN

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # shorter training (CI)
# Small networks gain nothing from more torch threads, and on a machine shared with
# other busy processes they run many times slower with them (FAQ, "Training is much
# slower than expected on a shared machine"): one thread.
torch.set_num_threads(1)
EPOCHS = 6 if QUICK else 12

torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
common = dict(optimizer=torch.optim.Adam, lr=1e-2, batch_size=64, verbose=0,
              iterator_train__shuffle=True, iterator_train__drop_last=True)
trained = NeuralNetClassifier(SmallCNN, module__width=16, criterion=torch.nn.CrossEntropyLoss,
                              max_epochs=10, train_split=None, **common).fit(X, y)
untrained = SmallCNN(width=16).eval()  # same architecture, random weights

# %%
# Distill from each teacher, measuring PID as the student learns
# ---------------------------------------------------------------
nets = {}
for name, teacher in (("trained teacher", trained), ("untrained teacher", untrained)):
    torch.manual_seed(0)
    net = PIDDistiller(SmallCNN, teacher, method="rid", module__width=4, verbose=0,
                       random_state=0, teacher_layers=["features"],
                       student_layers=["features"], max_epochs=EPOCHS,
                       train_split=ValidSplit(5, stratified=True),
                       callbacks=[PIDMonitor(every=1 if QUICK else 2)])
    nets[name] = net.fit(X, y)
    print(name)
    for row in net.history:
        if "valid_redundancy" in row:
            print(f"  epoch {row['epoch']:2d}  acc {row['valid_acc']:.3f}  "
                  f"Red {row['valid_redundancy']:.3f}  UniT {row['valid_unique_teacher']:.3f}  "
                  f"UniS {row['valid_unique_student']:.3f}  Syn {row['valid_synergy']:.3f}  "
                  f"I(Y;T) {row['valid_mi_teacher']:.3f}")

# %%
# Atoms and accuracy per epoch
# ----------------------------
# Bits on the left axis, validation accuracy (dashed) on the right.
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, (name, net) in zip(axes, nets.items()):
    plot_pid_history(net, ax=ax)
    ax.set_title(f"RID student, {name}")
fig.tight_layout()
plt.show()
