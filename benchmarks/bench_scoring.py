"""Benchmark: scoring teacher/student activations end to end, skpid vs the paper's pipeline.

For seeded class-structured activations (N x 512 teacher, N x 512 student, k = 10
clusters, 10 and 100 classes) it times, in the same run:

* skpid: ``score_representations(teacher, student, y, n_clusters=10, n_components=5)``
  (validation, row normalisation, randomized PCA, seeded KMeans, plug-in table, certified
  BROJA solve);
* the paper's pipeline: normalise -> PCA(5) -> KMeans(10) with scikit-learn, then the
  count table solved by a generic convex solver: the vectorised cvxpy + Clarabel
  formulation of ``skpid._testing`` (the fastest generic solver we measured; the paper's
  own cvxpy code falls back to SCS and is slower and less accurate);

and reports medians of wall time (the two alternated, round by round; and the best run, a
hint of how much other load on the machine inflates the medians) and of process CPU
time, the ratios, the solve times alone, and the largest difference of the atoms when
both solvers get the same codes (skpid's discretization).

    pip install ".[bench]"
    python benchmarks/bench_scoring.py [--repeats 3] [--n-samples 10000] [--classes 10 100]
"""

import argparse
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import normalize

from skpid import PIDEstimator, pid_from_counts, score_representations
from skpid._pid._core import broja_atoms
from skpid._pid._information import task_informations
from skpid._sampling import joint_counts
from skpid._testing import cvxpy_broja_objective

from _timing import machine, timed

ATOMS = ("redundancy", "unique_teacher", "unique_student", "synergy")


def make_activations(n_samples, n_classes, n_features=512, seed=0):
    """Teacher: a clean class embedding; student: a noisier one, plus shared nuisance."""
    rng = np.random.default_rng(seed)
    y = rng.integers(n_classes, size=n_samples)
    nuisance = rng.normal(size=(n_samples, 8))

    def layer(noise):
        embed = rng.normal(size=(n_classes, n_features))
        mix = 0.3 * rng.normal(size=(8, n_features))
        out = embed[y] + nuisance @ mix + noise * rng.normal(size=(n_samples, n_features))
        return np.maximum(out, 0.0).astype(np.float32)   # post-ReLU activations

    return layer(0.5), layer(1.5), y


def paper_codes(X, k, seed):
    """The paper's discretization with scikit-learn defaults (seeded here)."""
    Z = PCA(n_components=5, random_state=seed).fit_transform(normalize(X))
    return KMeans(n_clusters=k, n_init="auto", random_state=seed).fit_predict(Z)


def paper_pipeline(T, S, y, k, seed=0):
    t, s = paper_codes(T, k, seed), paper_codes(S, k, seed + 1)
    start = time.perf_counter()
    atoms = atoms_cvxpy(t, s, y, k)
    return atoms, time.perf_counter() - start


def atoms_cvxpy(t, s, y, k):
    counts = joint_counts(t, s, y, (k, k, int(y.max()) + 1))
    p = counts / counts.sum()
    values = broja_atoms(task_informations(p), cvxpy_broja_objective(p))
    return np.array([values[name] for name in ATOMS]) / np.log(2)




def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--n-features", type=int, default=512)
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--classes", type=int, nargs="*", default=[10, 100])
    args = parser.parse_args()
    k = args.n_clusters
    print(machine())
    print(f"data: {args.n_samples} x {args.n_features} teacher and student activations "
          f"(float32), k = {k}, median of {args.repeats}\n")

    # Warm-up at full size: imports, BLAS threads and buffers, cvxpy's code paths.
    T, S, y = make_activations(args.n_samples, 10, args.n_features, seed=1)
    score_representations(T, S, y, n_clusters=k, random_state=0)
    paper_pipeline(T, S, y, k)

    header = (f"{'classes':>7s} {'skpid s':>8s} {'(solve)':>8s} {'paper s':>8s} "
              f"{'(solve)':>8s} {'x total':>8s} {'x solve':>8s} {'|d atoms| bits':>15s} "
              f"{'cells used':>11s}")
    print(header)
    for n_classes in args.classes:
        T, S, y = make_activations(args.n_samples, n_classes, args.n_features)
        # The two alternated, round by round, so that both see the same machine; wall
        # and process CPU time of each call.
        wall = {"ours": [], "paper": []}
        cpu = {"ours": [], "paper": []}
        for _ in range(args.repeats):
            for name, fn in (("ours", lambda: score_representations(
                    T, S, y, n_clusters=k, n_components=5, random_state=0)),
                             ("paper", lambda: paper_pipeline(T, S, y, k))):
                w0, c0 = time.perf_counter(), time.process_time()
                out = fn()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
                if name == "ours":
                    ours = out
                else:
                    paper_atoms = out[0]
        t_ours, best_ours = float(np.median(wall["ours"])), min(wall["ours"])
        t_paper, best_paper = float(np.median(wall["paper"])), min(wall["paper"])
        cpu_ratio = np.median(cpu["paper"]) / np.median(cpu["ours"])
        # Same codes for both solvers: those of the skpid run above.
        d = T.shape[1]
        est = PIDEstimator(slice(0, d), slice(d, 2 * d), n_clusters=k, n_components=5,
                           random_state=0).fit(np.hstack([T, S]), y)
        t, s = est.transform(np.hstack([T, S])).T
        assert est.result_ == ours  # the estimator is what score_representations runs
        counts = joint_counts(t, s, y, (k, k, n_classes))
        solve_ours, _, same = timed(lambda: pid_from_counts(counts), args.repeats)
        solve_cvx, _, cvx_atoms = timed(lambda: atoms_cvxpy(t, s, y, k), args.repeats)
        diff = np.abs(np.array([getattr(same, a) for a in ATOMS]) - cvx_atoms).max()
        p_ty, p_sy = counts.sum(1), counts.sum(0)
        used = int(((p_ty[:, None, :] > 0) & (p_sy[None, :, :] > 0)).sum())
        print(f"{n_classes:7d} {t_ours:8.3f} {solve_ours:8.3f} {t_paper:8.3f} "
              f"{solve_cvx:8.3f} {t_paper / t_ours:8.1f} {solve_cvx / solve_ours:8.1f} "
              f"{diff:15.1e} {used:5d}/{k * k * n_classes:<5d}", flush=True)
        print(f"{'':7s} best of {args.repeats}: skpid {best_ours:.3f} s, paper pipeline "
              f"{best_paper:.3f} s; skpid certified gap {same.gap:.1e} bits")
        print(f"{'':7s} process CPU time, medians: skpid {np.median(cpu['ours']):.3f} s, "
              f"paper pipeline {np.median(cpu['paper']):.3f} s: x {cpu_ratio:.1f}")
        print(f"{'':7s} skpid atoms (bits): " + ", ".join(
            f"{a}={getattr(ours, a):.4f}" for a in ATOMS))
        print(f"{'':7s} paper atoms (bits): " + ", ".join(
            f"{a}={v:.4f}" for a, v in zip(ATOMS, paper_atoms)))


if __name__ == "__main__":
    main()
