"""
Plan a distillation: which teacher layer should the student learn from?
=======================================================================

Before training a student, :func:`skpid.score_layers` can say which teacher layer holds
knowledge worth distilling. For each candidate teacher layer T, paired with the
*untrained* student's layer S, on the student's training rows:

- :math:`I(Y;T)`: the task information of the teacher layer (≈ 0: nothing to give);
- :math:`\\mathrm{Uni}(Y: T \\setminus S)`: what the teacher layer knows about the labels
  that the student's layer does not, the knowledge left to distill;
- :math:`\\mathrm{Red}(Y: T, S)`: what they already share.

The recipe: distill the pair with the most unique teacher information. The task is the
benchmarks' tabular one (32 columns, 12 of them pure noise, 6 classes); the student, an
MLP with 12 hidden units, learns from 25 rows per class. Candidates: both hidden layers
of a trained MLP teacher, the last hidden layer of the same network untrained (random
features of the input) and of a *nuisance* teacher that sees only the noise columns.
Each candidate is then distilled (the default ``method="rid"``) over several seeds, and
the same figure shows the accuracy each one gives against the student trained alone.
"""
# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats
from skorch import NeuralNetClassifier

from skpid import PIDDistiller, score_layers
from skpid.distill.tasks import Select, paper_init, tabular_task
from skpid.distill.models import MLP

QUICK = os.environ.get("SKPID_EXAMPLES_QUICK") == "1"  # fewer seeds and epochs (CI)
SEEDS = range(3 if QUICK else 5)
EPOCHS = 20 if QUICK else 80
# Small networks gain nothing from more torch threads, and on a machine shared with
# other busy processes they run many times slower with them (FAQ, "Training is much
# slower than expected on a shared machine"): one thread.
torch.set_num_threads(1)
STUDENT = dict(module=MLP, module__n_features=32, module__hidden=12, module__n_classes=6)


def train_teacher(task, seed):
    """MLP(64, depth 2) on the full training split (2,400 rows)."""
    torch.manual_seed(seed)
    net = NeuralNetClassifier(MLP, module__n_features=32, module__hidden=64,
                              module__depth=2, module__n_classes=6,
                              criterion=torch.nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=1e-2, max_epochs=5 if QUICK else 30,
                              batch_size=64, train_split=None, verbose=0,
                              iterator_train__shuffle=True)
    return net.fit(task.X_train, task.y_train).module_.eval()


def candidates(task, seed):
    """name -> (teacher module, layer path)."""
    trained = train_teacher(task, seed)
    untrained = paper_init(MLP(32, hidden=64, depth=2, n_classes=6), 10_000 + seed)
    nuisance = Select(paper_init(MLP(12, hidden=64, depth=2, n_classes=6), 10_000 + seed),
                      task.noise).eval()
    return {"trained\nhidden 1": (trained, "body.2"),
            "trained\nhidden 2": (trained, "body.5"),
            "untrained\nhidden 2": (untrained, "body.5"),
            "nuisance\nhidden 2": (nuisance, "net.body.5")}


# %%
# Score the candidates before training
# ------------------------------------
# ``PIDDistiller.representations`` gives the activations of a (teacher layer, student
# layer) pair; a net fitted for zero epochs holds the student as initialised. Each pair
# is discretized (normalise, PCA to 5 components, KMeans with 10 codes), decomposed
# exactly, corrected for the plug-in bias by label permutations, and given 95 %
# bootstrap intervals. Only the student's 150 training rows are used: the labels a
# student would have.
def representations(teacher, layer, X, y, seed):
    net = PIDDistiller(**STUDENT, teacher=teacher, method="fitnet", teacher_layers=[layer],
                       student_layers=["body.2"], max_epochs=0, train_split=None,
                       verbose=0, random_state=seed, teacher_check="ignore").fit(X, y)
    return net.representations(X)


task = tabular_task(0)
X, y = task.X_train[task.subset], task.y_train[task.subset]
plan = candidates(task, 0)
scores = score_layers({name: representations(teacher, layer, X, y, 0)
                       for name, (teacher, layer) in plan.items()}, y, n_clusters=10,
                      random_state=0, bias_correction="permutation", n_permutations=20,
                      n_bootstrap=30 if QUICK else 200)
for name, r in scores.items():
    print(f"{name.replace(chr(10), ' '):20s} I(Y;T) {r.mi_teacher:.2f}  "
          f"UniT {r.unique_teacher:.2f} [{r.ci['unique_teacher'][0]:.2f}, "
          f"{r.ci['unique_teacher'][1]:.2f}]  Red {r.redundancy:.2f} bits")
chosen = max(scores, key=lambda name: scores[name].unique_teacher)
print("chosen:", chosen.replace("\n", " "))

# %%
# Distill every candidate
# -----------------------
# The default distiller (RID) on each candidate pair, and the student alone
# (``method="none"``), over several seeds: the same data, subset and initial weights for
# every variant of a seed, so that the paired differences measure the teacher layer.
accuracy = {name: [] for name in ["alone", *plan]}
for seed in SEEDS:
    task = tabular_task(seed)
    X, y = task.X_train[task.subset], task.y_train[task.subset]
    for name, (teacher, layer) in {"alone": (None, None), **candidates(task, seed)}.items():
        net = PIDDistiller(**STUDENT, teacher=teacher if teacher is not None else MLP(32, n_classes=6),
                           method="rid" if teacher is not None else "none",
                           teacher_layers=[layer], student_layers=["body.2"],
                           max_epochs=EPOCHS, batch_size=32, train_split=None, verbose=0,
                           random_state=seed, teacher_check="ignore").fit(X, y)
        accuracy[name].append(net.score(task.X_test, task.y_test))
    print(f"seed {seed}: " + ", ".join(f"{k.replace(chr(10), ' ')} {v[-1]:.3f}"
                                       for k, v in accuracy.items()))

alone = np.array(accuracy["alone"])
gain, half = {}, {}
for name in plan:
    diff = 100 * (np.array(accuracy[name]) - alone)
    gain[name] = diff.mean()
    half[name] = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    print(f"{name.replace(chr(10), ' '):20s} {gain[name]:+.1f} ± {half[name]:.1f} points")
# The chosen pair against the best of the others, paired by seed: does the ranking by
# UniT before training show in the accuracy, beyond the spread over seeds?
runner_up = max((n for n in plan if n != chosen), key=lambda n: gain[n])
wins = sum(a > b for a, b in zip(accuracy[chosen], accuracy[runner_up]))
versus = 100 * (np.array(accuracy[chosen]) - np.array(accuracy[runner_up]))
versus_half = stats.t.ppf(0.975, len(versus) - 1) * versus.std(ddof=1) / np.sqrt(len(versus))
print(f"chosen pair minus the runner-up ({runner_up.replace(chr(10), ' ')}): "
      f"{versus.mean():+.1f} ± {versus_half:.1f} points, better in {wins} of "
      f"{len(SEEDS)} seeds: "
      + ("the chosen pair is ahead beyond the spread over seeds"
         if versus.mean() - versus_half > 0 else
         "the two cannot be told apart with these seeds"))

# %%
# The plan and the outcome
# ------------------------
# Left: the scores before training (bits, 95 % bootstrap intervals). Right: what
# distilling each pair gave (points of test accuracy over the student alone, paired,
# 95 % t-intervals over seeds). The chosen pair is outlined.
names = list(plan)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
width = 0.27
x = np.arange(len(names))
for offset, (atom, label, color) in zip(
        (-width, 0, width), (("mi_teacher", "I(Y;T)", "tab:gray"),
                             ("unique_teacher", "Uni(Y: T\\S), to distill", "tab:blue"),
                             ("redundancy", "Red(Y: T, S), shared", "tab:green"))):
    values = np.array([getattr(scores[n], atom) for n in names])
    ci = np.array([scores[n].ci[atom] for n in names]).T
    left.bar(x + offset, values, width, color=color, label=label,
             yerr=np.abs(ci - values), capsize=2)
left.set_xticks(x, names, fontsize="small")
left.set_ylabel("bits (untrained student)")
left.set_title("before training: score_layers")
left.legend(fontsize="small")
colors = ["tab:blue" if n == chosen else "lightsteelblue" for n in names]
bars = right.bar(x, [gain[n] for n in names], yerr=[half[n] for n in names], capsize=4,
                 color=colors)
bars[names.index(chosen)].set_edgecolor("black")
bars[names.index(chosen)].set_linewidth(2)
right.axhline(0, color="black", linewidth=0.8)
right.set_xticks(x, names, fontsize="small")
right.set_ylabel("accuracy gain over the student alone\n(points, paired, 95 % CI)")
right.set_title("after training: RID on each pair")
fig.tight_layout()
plt.show()

# %%
# What the numbers support
# ------------------------
# The score ranks the pairs before any training, and where it separates them clearly the
# outcome follows: the two layers of the trained teacher, which hold most of what the
# untrained student lacks, give the largest mean gains, while the untrained teacher's
# layer (its random features are informative, as the input is, but the student soon
# holds what they hold) and the nuisance layer (:math:`I(Y;T)` and UniT about 0:
# ``teacher_check`` would warn before training, and RID's information gate keeps it
# out) give little or nothing. With few seeds (``SKPID_EXAMPLES_QUICK=1`` runs 3) even
# the trained layers' intervals can reach 0: read the gains with their intervals.
#
# Between the two trained layers the ranking is a prediction to check, not a
# guarantee: their scores are closer to each other than to the others', and their gains
# can overlap. Whether the chosen layer gives *the largest* gain is decided by the
# paired comparison printed above (the chosen pair minus the runner-up, seed by seed,
# with its 95 % interval), not by the higher of two means whose intervals overlap: it
# says either that the chosen pair is ahead beyond the spread over seeds or that these
# seeds cannot tell the two apart.
#
# The logits are not a candidate here: a feature method regresses the student's layer
# onto the teacher's; the logits are distilled by KD (``method="kd"`` or ``kd_weight``),
# a different kind of target.
