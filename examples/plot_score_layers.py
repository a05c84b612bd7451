"""
Score teacher and student representations layer by layer
========================================================

Where does a student stand against its teacher?  We train an MLP teacher and a much
narrower MLP student on digits, capture the activations of both hidden layers and the
logits on held-out data, and decompose the task information of each (teacher layer,
student layer) pair with :func:`skpid.score_layers`: how much of the teacher's task
knowledge the student already holds (redundancy, "transferred knowledge") and how much
it does not (the teacher's unique information, "knowledge to distill").  An untrained
student is the reference: before training, most of the teacher's task knowledge is left to
distill.
"""
# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier

from skpid import score_layers
from skpid.distill.models import MLP

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # shorter training (CI)
# Small networks gain nothing from more torch threads, and on a machine shared with
# other busy processes they run many times slower with them (FAQ, "Training is much
# slower than expected on a shared machine"): one thread.
torch.set_num_threads(1)
EPOCHS = 8 if QUICK else 20

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y,
                                                    random_state=0)


def train_mlp(hidden, epochs):
    torch.manual_seed(0)
    net = NeuralNetClassifier(MLP, module__hidden=hidden, module__depth=2,
                              criterion=torch.nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=3e-3, max_epochs=epochs,
                              batch_size=64, train_split=None, verbose=0,
                              iterator_train__shuffle=True)
    return net.fit(X_train, y_train)


teacher = train_mlp(hidden=64, epochs=EPOCHS)
student = train_mlp(hidden=8, epochs=EPOCHS)
untrained = train_mlp(hidden=8, epochs=0)  # initialised, never trained
for name, net in (("teacher", teacher), ("student", student), ("untrained", untrained)):
    print(f"{name:9s} test accuracy {net.score(X_test, y_test):.3f}")

# %%
# Capture the representations
# ---------------------------
# ``MLP(depth=2)`` holds ``Linear-BN-ReLU`` blocks in ``body``: its hidden
# representations are the outputs of ``body.2`` and ``body.5`` (the ReLUs).  Plain torch
# forward hooks collect them, in eval mode, on the test split.
LAYERS = {"hidden 1": "body.2", "hidden 2": "body.5", "logits": None}


def representations(net, X):
    module = net.module_.eval()
    named = dict(module.named_modules())
    found = {}
    hooks = [named[path].register_forward_hook(
                 lambda mod, inp, out, key=key: found.__setitem__(key, out.numpy()))
             for key, path in LAYERS.items() if path is not None]
    with torch.no_grad():
        found["logits"] = module(torch.as_tensor(X)).numpy()
    for hook in hooks:
        hook.remove()
    return found


t_reps = representations(teacher, X_test)
shapes = {name: rep.shape[1:] for name, rep in t_reps.items()}
print("teacher representation shapes:", shapes)

# %%
# Decompose, pair by pair
# -----------------------
# Each layer is discretized into 10 codes (L2-normalise, PCA to 5 components, KMeans;
# the paper's pipeline), and the PID of the labels is computed exactly.  The permutation
# correction subtracts the bias of the plug-in estimate (719 test samples, 10 x 10 x 10
# cells).
scores = {}
for name, net in (("untrained student", untrained), ("trained student", student)):
    s_reps = representations(net, X_test)
    pairs = {layer: (t_reps[layer], s_reps[layer]) for layer in LAYERS}
    scores[name] = score_layers(pairs, y_test, n_clusters=10, random_state=0,
                                bias_correction="permutation", n_permutations=10)
    for layer, r in scores[name].items():
        print(f"{name:17s} {layer:8s}  I(Y;T)={r.mi_teacher:.2f}  I(Y;S)={r.mi_student:.2f}"
              f"  Red={r.redundancy:.2f}  UniT={r.unique_teacher:.2f}"
              f"  UniS={r.unique_student:.2f}  Syn={r.synergy:.2f}  bits")

# %%
# The picture
# -----------
# One bar per layer pair: the task information of both representations together,
# :math:`I(Y;T,S)`, split into its atoms; :math:`H(Y) = \log_2 10 \approx 3.32` bits is
# the ceiling.  Training the student moves the teacher's knowledge from "to distill"
# (blue) into "transferred" (green).
ATOMS = {"redundancy": ("Red (transferred)", "tab:green"),
         "unique_teacher": ("Uni T (to distill)", "tab:blue"),
         "unique_student": ("Uni S", "tab:orange"),
         "synergy": ("Syn", "tab:purple")}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, (name, result) in zip(axes, scores.items()):
    bottom = np.zeros(len(LAYERS))
    for atom, (label, color) in ATOMS.items():
        values = np.array([getattr(result[layer], atom) for layer in LAYERS])
        ax.bar(list(LAYERS), values, bottom=bottom, color=color, label=label)
        bottom += values
    ax.axhline(np.log2(10), color="gray", linestyle=":", linewidth=1)
    ax.set_title(name)
    ax.set_xlabel("layer pair (teacher, student)")
axes[0].set_ylabel("bits")
axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
fig.suptitle("PID of the digit labels into teacher and student layers")
fig.tight_layout()
plt.show()
