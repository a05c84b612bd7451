"""What a user who changes nothing gets: PIDDistiller's defaults on students we did not
tune for, against the same student trained alone with the same defaults.

Matrix: 3 student architectures × 3 training sizes × a trained and a nuisance teacher,
paired seeds (same data, subset and student initialisation for every method of a seed).
Every fit sets nothing but ``module``, ``teacher`` and the layer pair (``default``), or
nothing but ``module`` and ``teacher`` (``default-logits``: no layers given), or
``method="none"`` (the student alone, every other setting at its default). Where the
method distills the logits only (the default, KD), the two are the same fit, run once.

Architectures and data (all generated here, from scikit-learn's digits or from scratch):

- ``mlp``: an MLP student with BatchNorm (2 hidden layers of 32) on tabular data
  (``make_classification``: 10 classes, 40 columns of which 10 informative, 10 redundant,
  and 10 columns of pure noise appended); paired layer ``body`` (last hidden layer).
- ``cnn``: a small CNN student (two 3×3 convolutions of width 4 with BatchNorm, pooling)
  on 10×10 images: a digit of scikit-learn's set, shifted by up to one pixel, scaled and
  noised, beside a channel of pure noise; digits of the test split are not used for
  training; paired layer ``features`` (the feature maps).
- ``conv1d``: a 1-D convolutional student (width 8, BatchNorm) on signals: 5 classes of
  noisy, randomly shifted and scaled waveforms, beside a channel of smoothed noise;
  paired layer ``pool`` (the pooled feature vector).

Teachers: ``trained``, a wider network of the same family trained on a pool of
``--pool`` rows (which holds the student's rows); ``nuisance``, a network of the same
family initialised as the paper's code does (kaiming-uniform fan_out) that sees only the
noise channel or columns: I(Y;T) = 0 by construction.

Reported per cell: the mean test accuracy of ``none``, the paired difference of each
default fit to ``none`` with a 95 % t-interval over seeds, the worst seed's difference,
and the median wall time of each fit relative to ``none`` (timed after warm-up fits
of every variant; run it alone on the machine). The targets of the issue are
checked and printed at the end:

- trained teacher: the default method ≥ ``none`` in every cell (mean), ≥ ``none`` + 2
  points where the teacher beats ``none`` by 5 points or more, and no seed more than 3
  points below its ``none``;
- nuisance teacher: ≥ ``none`` − 1 in every cell;
- a default fit takes ≤ 3 times the wall time of ``none``.

Run: ``python benchmarks/bench_distill_defaults.py --jobs 2`` (full: 5 seeds, about an
hour on two cores), ``--quick`` (smoke: one seed, small sizes, about a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from joblib import Parallel, delayed
from scipy import stats
from sklearn.datasets import load_digits, make_classification
from skorch import NeuralNetClassifier
from torch import nn

from _timing import machine
from bench_distill_quality import SignalCNN, waveforms
from skpid.distill import METHODS, PIDDistiller
from skpid.distill.models import MLP, SmallCNN
from skpid.distill.tasks import Select, paper_init
from skpid.exceptions import NuisanceTeacherWarning

SIZES = (200, 2000, 20000)
ARCHS = ("mlp", "cnn", "conv1d")
TEACHERS = ("trained", "nuisance")
VARIANTS = ("default", "default-logits")
N_TEST = 4000


# ----------------------------------------------------------------------------- data
def tabular_data(n: int, seed: int):
    """``n`` rows of 50 float32 columns (the last 10 pure noise), 10 classes."""
    X, y = make_classification(n_samples=n, n_features=40, n_informative=10,
                               n_redundant=10, n_classes=10, n_clusters_per_class=2,
                               class_sep=1.0, flip_y=0.01, random_state=seed)
    noise = np.random.default_rng(seed).normal(size=(n, 10))
    X = np.concatenate([X, noise], axis=1)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(np.float32), y.astype(np.int64)


def digit_images(n: int, base_X, base_y, rng):
    """``n`` two-channel 10×10 images: a digit of ``base_X`` shifted by up to a pixel,
    scaled and noised, and a channel of uniform noise."""
    pick = rng.integers(0, len(base_y), size=n)
    images = np.zeros((n, 10, 10))
    shifts = rng.integers(0, 3, size=(n, 2))
    for i, (k, (dy, dx)) in enumerate(zip(pick, shifts)):
        images[i, dy:dy + 8, dx:dx + 8] = base_X[k]
    images = images * rng.uniform(0.6, 1.2, size=(n, 1, 1)) + rng.normal(0, 0.25, images.shape)
    X = np.stack([images, rng.uniform(size=images.shape)], axis=1)
    return X.astype(np.float32), base_y[pick].astype(np.int64)


def signals(n: int, rng, length: int = 48, noise_sd: float = 0.9):
    templates = waveforms(length)
    y = rng.integers(0, 5, size=n)
    shifts = rng.integers(0, length, size=n)
    signal = np.stack([np.roll(templates[c], s) for c, s in zip(y, shifts)])
    signal = signal * rng.uniform(0.5, 1.5, size=(n, 1)) + noise_sd * rng.normal(size=signal.shape)
    noise = np.stack([np.convolve(r, np.ones(5) / 5, mode="same")
                      for r in rng.normal(size=(n, length)) * 2])
    return np.stack([signal, noise], axis=1).astype(np.float32), y.astype(np.int64)


def task(arch: str, seed: int, pool: int):
    """``(X_pool, y_pool, X_test, y_test, makers, student)`` of one architecture: the
    pool the teacher trains on (the student's rows are its first ones), a test split,
    the teacher makers and the student's settings (module and layer)."""
    rng = np.random.default_rng(seed)
    if arch == "mlp":
        X, y = tabular_data(pool + N_TEST, seed)
        X_pool, y_pool, X_test, y_test = X[:pool], y[:pool], X[pool:], y[pool:]
        teacher = lambda: MLP(50, hidden=256, depth=2, n_classes=10)  # noqa: E731
        nuisance = lambda: Select(paper_init(MLP(10, hidden=256, depth=2, n_classes=10),
                                             10_000 + seed), slice(40, 50))  # noqa: E731
        student = dict(module=MLP, module__n_features=50, module__hidden=32,
                       module__depth=2, module__n_classes=10, layer="body")
        nuisance_layer = "net.body"
    elif arch == "cnn":
        digits_X, digits_y = load_digits(return_X_y=True)
        order = rng.permutation(len(digits_y))
        train_base, test_base = order[:1200], order[1200:]
        X_pool, y_pool = digit_images(pool, digits_X[train_base].reshape(-1, 8, 8) / 16,
                                      digits_y[train_base], rng)
        X_test, y_test = digit_images(N_TEST, digits_X[test_base].reshape(-1, 8, 8) / 16,
                                      digits_y[test_base], rng)
        teacher = lambda: SmallCNN(width=32, in_channels=2)  # noqa: E731
        nuisance = lambda: Select(paper_init(SmallCNN(width=32, in_channels=1),  # noqa: E731
                                             10_000 + seed), slice(1, 2))
        student = dict(module=SmallCNN, module__width=4, module__in_channels=2,
                       layer="features")
        nuisance_layer = "net.features"
    else:
        X, y = signals(pool + N_TEST, rng)
        X_pool, y_pool, X_test, y_test = X[:pool], y[:pool], X[pool:], y[pool:]
        teacher = lambda: SignalCNN(width=32)  # noqa: E731
        nuisance = lambda: Select(paper_init(SignalCNN(width=32, in_channels=1),  # noqa: E731
                                             10_000 + seed), slice(1, 2))
        student = dict(module=SignalCNN, module__width=8, layer="pool")
        nuisance_layer = "net.pool"
    makers = {"trained": (teacher, student["layer"]), "nuisance": (nuisance, nuisance_layer)}
    return X_pool, y_pool, X_test, y_test, makers, student


def train_teacher(make, X, y, seed, epochs, cache):
    """The trained teacher: Adam (lr 1e-3), batches of 128, ``epochs`` epochs on the
    pool; cached on disk per (arch, seed, pool size)."""
    if cache is not None and os.path.exists(cache):
        module = make()
        module.load_state_dict(torch.load(cache, weights_only=True))
        return module.eval()
    torch.manual_seed(seed)
    net = NeuralNetClassifier(make(), criterion=nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=1e-3, batch_size=128,
                              max_epochs=epochs, train_split=None, verbose=0,
                              iterator_train__shuffle=True).fit(X, y)
    if cache is not None:
        torch.save(net.module_.state_dict(), cache)
    return net.module_.eval()


# ----------------------------------------------------------------------------- running
def fit(variant, teacher, layer, student, X, y, seed, overrides):
    settings = dict(module=student["module"], teacher=teacher, random_state=seed,
                    verbose=0, **{k: v for k, v in student.items()
                                  if k.startswith("module__")}, **overrides)
    if variant == "none":
        settings["method"] = "none"
    elif variant == "default":
        settings.update(teacher_layers=[layer], student_layers=[student["layer"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NuisanceTeacherWarning)
        began = time.perf_counter()
        net = PIDDistiller(**settings).fit(X, y)
    return net, time.perf_counter() - began


def run_unit(arch, seed, sizes, teachers, variants, pool, teacher_epochs, cache_dir,
             threads, overrides, start):
    torch.set_num_threads(threads)
    X_pool, y_pool, X_test, y_test, makers, student = task(arch, seed, pool)
    method = overrides.get("method", PIDDistiller(None).method)
    logits_only = isinstance(method, str) and not METHODS[method].uses_features
    rows = []
    teacher_acc = {}
    for name in teachers:
        make, layer = makers[name]
        if name == "trained":
            cache = (os.path.join(cache_dir, f"{arch}-{seed}-{pool}-{teacher_epochs}.pt")
                     if cache_dir else None)
            module = train_teacher(make, X_pool, y_pool, seed, teacher_epochs, cache)
        else:
            module = make().eval()
        with torch.no_grad():
            teacher_acc[name] = float((module(torch.as_tensor(X_test)).argmax(1).numpy()
                                       == y_test).mean())
        makers[name] = (module, layer)
    # warm-up: imports and first calls (torch's lazy modules, the teacher check's
    # estimators) are paid here, not by whichever fit is timed first
    warm = {**overrides, "max_epochs": 2}
    for name in teachers:
        for variant in ("none", *variants):
            fit(variant, makers[name][0], makers[name][1], student, X_pool[:200],
                y_pool[:200], seed, warm)
    for size in sizes:
        X, y = X_pool[:size], y_pool[:size]
        none, none_time = fit("none", makers["trained"][0], None, student, X, y, seed,
                              overrides)
        none_acc = float((none.predict(X_test) == y_test).mean())
        for name in teachers:
            module, layer = makers[name]
            rows.append(dict(arch=arch, size=size, teacher=name, variant="none", seed=seed,
                             acc=none_acc, seconds=none_time, epochs=len(none.history),
                             teacher_acc=teacher_acc[name]))
            done = {}
            for variant in variants:
                if variant == "default-logits" and "default" in done and logits_only:
                    # the same fit: the method distills the logits, layers or not
                    acc, seconds, epochs = done["default"]
                else:
                    net, seconds = fit(variant, module, layer, student, X, y, seed,
                                       overrides)
                    acc = float((net.predict(X_test) == y_test).mean())
                    epochs = len(net.history)
                done[variant] = acc, seconds, epochs
                rows.append(dict(arch=arch, size=size, teacher=name, variant=variant,
                                 seed=seed, acc=acc, seconds=seconds, epochs=epochs,
                                 teacher_acc=teacher_acc[name]))
                print(f"[{time.perf_counter() - start:7.1f}s] {arch} n={size} seed {seed} "
                      f"{name:8s} {variant:15s} acc {acc:.3f} (none {none_acc:.3f}) "
                      f"{seconds:6.1f}s vs {none_time:6.1f}s, {epochs} epochs", flush=True)
    return rows


def summarize(rows, archs, sizes, teachers, variants):
    """The Markdown table and the target checks."""
    lines = ["| student | rows | teacher (acc %) | none % | fit | Δ vs none (95 % CI) | "
             "worst seed | time / none | epochs |", "|---|---|---|---|---|---|---|---|---|"]
    checks = []
    for arch in archs:
        for size in sizes:
            for teacher in teachers:
                cell = [r for r in rows if (r["arch"], r["size"], r["teacher"]) ==
                        (arch, size, teacher)]
                if not cell:
                    continue
                by = {v: sorted((r for r in cell if r["variant"] == v),
                                key=lambda r: r["seed"]) for v in ("none", *variants)}
                none = np.array([r["acc"] for r in by["none"]]) * 100
                t_acc = np.mean([r["teacher_acc"] for r in cell]) * 100
                for variant in variants:
                    acc = np.array([r["acc"] for r in by[variant]]) * 100
                    d = acc - none
                    half = (stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
                            if len(d) > 1 else float("nan"))
                    ratio = np.median([r["seconds"] / n["seconds"]
                                       for r, n in zip(by[variant], by["none"])])
                    epochs = np.median([r["epochs"] for r in by[variant]])
                    none_epochs = np.median([r["epochs"] for r in by["none"]])
                    lines.append(f"| {arch} | {size} | {teacher} ({t_acc:.1f}) | "
                                 f"{none.mean():.1f} | {variant} | {d.mean():+.1f} ± "
                                 f"{half:.1f} | {d.min():+.1f} | {ratio:.2f} | "
                                 f"{epochs:.0f} (none {none_epochs:.0f}) |")
                    where = f"{arch} n={size} {teacher} {variant}"
                    if teacher == "trained":
                        checks.append((where, "mean ≥ none", d.mean(), d.mean() >= 0))
                        if t_acc - none.mean() >= 5:
                            checks.append((where, "mean ≥ none + 2 (teacher ≥ none + 5)",
                                           d.mean(), d.mean() >= 2))
                        checks.append((where, "no seed below none − 3", d.min(),
                                       d.min() >= -3))
                    else:
                        checks.append((where, "mean ≥ none − 1", d.mean(), d.mean() >= -1))
                    checks.append((where, "time ≤ 3 × none", ratio, ratio <= 3))
    return "\n".join(lines), checks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--teachers", default=",".join(TEACHERS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--pool", type=int, default=30000,
                        help="rows the trained teacher learns from")
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                        "skpid-bench-teachers"),
                        help="directory of trained teachers ('' for none)")
    parser.add_argument("--set", action="append", default=[],
                        help="a PIDDistiller parameter for every fit, as name=value (to "
                             "compare candidate defaults)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one seed, 200 rows, small pool and teachers")
    args = parser.parse_args(argv)
    import ast
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    archs, teachers = args.archs.split(","), args.teachers.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = args.variants.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    pool, teacher_epochs = args.pool, args.teacher_epochs
    cache = args.cache or None
    if args.quick:
        sizes, seeds, pool, teacher_epochs, cache = [200], range(1), 2000, 3, None
    if cache:
        os.makedirs(cache, exist_ok=True)
    print(f"{machine()}; torch {torch.__version__}; {args.jobs} job(s) of {args.threads} "
          f"torch thread(s); settings {overrides or 'all defaults'}", flush=True)
    start = time.perf_counter()
    units = [(arch, seed) for arch in archs for seed in seeds]
    outs = Parallel(n_jobs=args.jobs)(
        delayed(run_unit)(arch, seed, sizes, teachers, variants, pool, teacher_epochs,
                          cache, args.threads, overrides, start) for arch, seed in units)
    rows = [row for out in outs for row in out]
    md, checks = summarize(rows, archs, sizes, teachers, variants)
    print(f"\n{len(list(seeds))} paired seeds, {time.perf_counter() - start:.0f} s\n\n{md}\n")
    failed = [c for c in checks if not c[3]]
    for where, name, value, ok in checks:
        if not ok or args.quick:
            print(f"- {where}: {name}: {value:+.2f} {'ok' if ok else 'FAILS'}")
    print(f"\ntargets: {len(checks) - len(failed)} of {len(checks)} hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
