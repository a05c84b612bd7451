"""The distillation part of ``python -m skpid demo``.

A tabular task (8 informative, 8 redundant, 4 repeated and 12 pure-noise columns; 6
classes) and two teachers: an MLP trained on the full training split, and a *nuisance*
teacher that sees only the noise columns (I(Y;T) = 0). A narrow MLP student learns from
25 rows per class with PIDDistiller's defaults (the default method, KD; its budget: up
to 200 epochs, early stopping on the validation split), and by VID and RID, over a few
seeds; the table gives mean test accuracy, the paired difference to no distillation and
the PID atoms (bits) of the labels into teacher and student features. One row turns the
teacher check off, to show what distilling a nuisance teacher costs.
"""

import sys
import time
import warnings

import numpy as np
import torch

# (label, method, extra parameters): every other setting is PIDDistiller's default
METHODS = (("none", "none", {}), ("default (kd)", "kd", {}),
           ("kd, teacher_check='ignore'", "kd", {"teacher_check": "ignore"}),
           ("vid (α1=100)", "vid", {"pid_weight": 100.0}), ("rid", "rid", {}))
_ATOMS = ("red", "uni_t", "uni_s", "syn", "mi_t")


def run_distill_demo(seed: int = 0, epochs: int = 50, seeds: int = 3,
                     out=sys.stdout) -> list:
    """Run the demo, printing progress and the table; return the table rows
    ``(teacher, method label, {"acc": [...], "red": [...], ...})`` (one value per seed).
    """
    threads = torch.get_num_threads()
    # A 12-unit student on 150 rows: thread start-up costs more than it saves, and on a
    # shared machine extra threads only contend.
    torch.set_num_threads(1)
    try:
        return _run(seed, epochs, seeds, out)
    finally:
        torch.set_num_threads(threads)


def _teachers(task, seed, epochs):
    from skorch import NeuralNetClassifier

    from .distill.tasks import Select, paper_init
    from .distill.models import MLP

    n_features = task.X_train.shape[1]
    torch.manual_seed(seed)
    trained = NeuralNetClassifier(
        MLP, module__n_features=n_features, module__hidden=64, module__depth=2,
        module__n_classes=6, criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam, lr=1e-2, max_epochs=epochs,
        batch_size=64, iterator_train__shuffle=True, train_split=None, verbose=0,
    ).fit(task.X_train, task.y_train).module_.eval()
    n_noise = task.noise.stop - task.noise.start
    nuisance = Select(paper_init(MLP(n_noise, hidden=64, depth=2, n_classes=6),
                                 10_000 + seed), task.noise).eval()
    return {"trained": (trained, "body"), "nuisance": (nuisance, "net.body")}


def _run(seed, epochs, seeds, out):
    from ._estimator import score_representations
    from .exceptions import NuisanceTeacherWarning
    from .distill import PIDDistiller
    from .distill.tasks import tabular_task
    from .distill.models import MLP

    start = time.perf_counter()

    def say(msg):
        print(f"[{time.perf_counter() - start:5.1f}s] {msg}", file=out, flush=True)

    results, teacher_acc, nuisance_warnings = {}, {}, {}
    for s in range(seed, seed + seeds):
        task = tabular_task(s)
        X, y = task.X_train[task.subset], task.y_train[task.subset]
        if s == seed:
            print(f"\nKnowledge distillation on a tabular task ({len(task.y_train)} "
                  f"training rows, of which the student gets {len(y)}; "
                  f"{len(task.y_test)} test rows; 32 columns, the last 12 pure noise). "
                  "Teachers: MLP(64, 64); student: MLP(12); layer pair: the last hidden "
                  f"layers. {seeds} seeds.", file=out)
        for teacher_name, (teacher, layer) in _teachers(task, s, epochs).items():
            with torch.no_grad():
                logits = teacher(torch.as_tensor(task.X_test))
            teacher_acc.setdefault(teacher_name, []).append(
                float((logits.argmax(1).numpy() == task.y_test).mean()))
            for label, method, params in METHODS:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", NuisanceTeacherWarning)
                    net = PIDDistiller(MLP, teacher, method=method, module__n_features=32,
                                       module__hidden=12, module__n_classes=6,
                                       teacher_layers=[layer], student_layers=["body"],
                                       verbose=0, random_state=s, **params).fit(X, y)
                for w in caught:
                    if issubclass(w.category, NuisanceTeacherWarning):
                        # one verdict per measured layer (KD's logits, the hidden layer)
                        verdicts = nuisance_warnings.setdefault(teacher_name, {})
                        verdicts.setdefault(str(w.message).split(" holds")[0], str(w.message))
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                t, st = net.representations(task.X_test)
                pid = score_representations(t, st, task.y_test, n_clusters=10,
                                            random_state=s)
                row = results.setdefault((teacher_name, label), {k: [] for k in
                                                                 ("acc",) + _ATOMS})
                row["acc"].append(float(np.mean(net.predict(task.X_test) == task.y_test)))
                for atom, value in zip(_ATOMS, (pid.redundancy, pid.unique_teacher,
                                                pid.unique_student, pid.synergy,
                                                pid.mi_teacher)):
                    row[atom].append(value)
            say(f"seed {s}: {teacher_name} teacher done")
    _print_table(results, teacher_acc, out)
    for teacher_name in ("trained", "nuisance"):
        verdicts = nuisance_warnings.get(teacher_name, {})
        print(f"\nteacher_check, {teacher_name} teacher: "
              + ("\n".join(f"NuisanceTeacherWarning: {v}" for v in verdicts.values())
                 or "no warning"), file=out)
    print("\nPID in bits on the test rows (normalise, PCA 5, KMeans 10, BROJA; means over "
          "seeds). Red(Y:T,S) is the task knowledge the student shares with the teacher, "
          "UniT what is left to distill. The nuisance teacher's I(Y;T) is near 0: it has "
          "nothing to give. The teacher check finds that before training and the net "
          "does not distill it (the rows with a NuisanceTeacherWarning equal 'none'); "
          "distilled anyway (teacher_check='ignore') it costs accuracy. "
          "benchmarks/bench_distill_defaults.py runs the defaults on three students and "
          "three data sizes, benchmarks/bench_distill_quality.py every method on three "
          "tasks. "
          f"Total {time.perf_counter() - start:.0f}s.", file=out)
    return [(teacher, label, values) for (teacher, label), values in results.items()]


def _print_table(results, teacher_acc, out):
    print("\n| teacher (acc) | method | test acc | Δ vs none | Red | UniT | UniS | Syn "
          "| I(Y;T) |", file=out)
    print("|---|---|---|---|---|---|---|---|---|", file=out)
    for (teacher, label), values in results.items():
        acc = np.array(values["acc"])
        delta = acc - np.array(results[(teacher, "none")]["acc"])
        cell = "—" if label == "none" else f"{100 * delta.mean():+.1f}"
        print(f"| {teacher} ({np.mean(teacher_acc[teacher]):.3f}) | {label} | "
              f"{acc.mean():.3f} | {cell} | "
              + " | ".join(f"{np.mean(values[a]):.3f}" for a in _ATOMS) + " |", file=out)
