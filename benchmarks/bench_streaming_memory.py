"""Benchmark: peak memory of streamed PID scoring as the number of rows N grows.

For N rows of teacher and student activations (512 float32 columns each, generated chunk
by chunk from a latent class signal, a shared nuisance and noise, so that the PID is not
trivial) it runs, each in a fresh Python process so that peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is that run's alone:

* streamed: ``score_chunks`` on a callable that generates the chunks (again for the
  second pass), so nothing of size N x d is ever held;
* dense (the reference, for N <= ``--dense-max``): the same activations generated into
  arrays, then ``score_representations`` with the same settings;

and reports peak RSS, the RSS after imports, wall time and the atoms (bits), then the
ratio of peak RSS at the largest N over the smallest for each.  With ``sample_size < N``
the streamed KMeans sees a sample of the rows, so its atoms differ slightly from the
dense ones.

    PYTHONPATH=. python benchmarks/bench_streaming_memory.py \\
        [--n-samples 100000 1000000] [--dense-max 200000] [--quick]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from _timing import machine

ATOMS = ("redundancy", "unique_teacher", "unique_student", "synergy")


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is in KiB on
    Linux, in bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class Activations:
    """Deterministic chunks of teacher and student activations and their labels.

    Chunk ``i`` depends only on ``(seed, i)``, so both passes (and the dense reference)
    see the same rows.  Teacher: an embedding of the class; student: a noisier embedding
    of the coarse class ``y // 2`` only (it has learned half of the distinctions); both
    share a low-dimensional nuisance, as post-ReLU activations.
    """

    def __init__(self, n_samples, n_features=512, n_classes=10, chunk_size=10_000, seed=0):
        self.n_samples, self.chunk_size = n_samples, chunk_size
        self.n_classes, self.seed = n_classes, seed
        rng = np.random.default_rng(seed)
        self.embed_t = rng.standard_normal((n_classes, n_features), dtype=np.float32)
        self.embed_s = rng.standard_normal(((n_classes + 1) // 2, n_features),
                                           dtype=np.float32)
        self.mix_t = 0.3 * rng.standard_normal((8, n_features), dtype=np.float32)
        self.mix_s = 0.3 * rng.standard_normal((8, n_features), dtype=np.float32)

    def chunk(self, index):
        rows = min(self.chunk_size, self.n_samples - index * self.chunk_size)
        rng = np.random.default_rng([self.seed, index])
        y = rng.integers(self.n_classes, size=rows)
        nuisance = rng.standard_normal((rows, 8), dtype=np.float32)

        def layer(embed, labels, mix, noise):
            out = embed[labels] + nuisance @ mix
            out += noise * rng.standard_normal(out.shape, dtype=np.float32)
            return np.maximum(out, 0.0, out=out)

        return (layer(self.embed_t, y, self.mix_t, 0.8),
                layer(self.embed_s, y // 2, self.mix_s, 1.5), y)

    def chunks(self):
        n_chunks = -(-self.n_samples // self.chunk_size)
        return (self.chunk(i) for i in range(n_chunks))


def worker(mode, n_samples, args):
    """One measurement, in this (fresh) process; prints one JSON line."""
    from skpid import score_chunks, score_representations

    baseline = rss_mb()
    data = Activations(n_samples, args.n_features, args.n_classes, args.chunk_size)
    settings = dict(n_clusters=args.n_clusters, n_components=args.n_components,
                    random_state=0)
    start = time.perf_counter()
    if mode == "streamed":
        result = score_chunks(data.chunks, sample_size=args.sample_size,
                              chunk_size=args.chunk_size, **settings)
    else:
        teacher = np.empty((n_samples, args.n_features), dtype=np.float32)
        student, y = np.empty_like(teacher), np.empty(n_samples, dtype=np.int64)
        for i, (t, s, labels) in enumerate(data.chunks()):
            rows = slice(i * args.chunk_size, i * args.chunk_size + len(labels))
            teacher[rows], student[rows], y[rows] = t, s, labels
        result = score_representations(teacher, student, y, **settings)
    wall = time.perf_counter() - start
    print(json.dumps({"mode": mode, "n": n_samples, "peak_mb": rss_mb(),
                      "baseline_mb": baseline, "wall_s": wall,
                      "atoms": [getattr(result, a) for a in ATOMS],
                      "mi_joint": result.mi_joint}))


def measure(mode, n_samples, argv):
    """Run ``worker`` in a fresh interpreter and return its record."""
    out = subprocess.run([sys.executable, __file__, *argv, "--worker", mode, str(n_samples)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_ratio(records, mode):
    runs = sorted((r for r in records if r["mode"] == mode), key=lambda r: r["n"])
    if len(runs) < 2:
        print(f"{mode}: run at one N only, no ratio")
        return
    lo, hi = runs[0], runs[-1]
    print(f"{mode}: peak RSS at N={hi['n']:,} / at N={lo['n']:,} "
          f"({hi['n'] / lo['n']:.0f}x the rows) = {hi['peak_mb'] / lo['peak_mb']:.2f} "
          f"({hi['peak_mb']:.0f} MB / {lo['peak_mb']:.0f} MB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dense-max", type=int, default=200_000,
                        help="largest N also scored in memory (the reference)")
    parser.add_argument("--n-features", type=int, default=512)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--n-components", type=int, default=5)
    parser.add_argument("--sample-size", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, for a smoke run")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n_samples, args.dense_max, args.n_features = [4000, 40_000], 40_000, 64
        args.sample_size, args.chunk_size = 2000, 2000
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args)
        return

    print(machine())
    print("command: " + " ".join([os.path.basename(sys.executable)] + sys.argv))
    print(f"data: N x {args.n_features} teacher and student activations (float32), "
          f"{args.n_classes} classes; k = {args.n_clusters}, {args.n_components} "
          f"components; streamed: sample_size = {args.sample_size:,}, chunk_size = "
          f"{args.chunk_size:,}\n")
    # The settings the workers need, passed on their command line.
    argv = [f"--{name}={getattr(args, name.replace('-', '_'))}"
            for name in ("n-features", "n-classes", "n-clusters", "n-components",
                         "sample-size", "chunk-size")]
    print(f"{'N':>10s} {'mode':>8s} {'peak RSS MB':>11s} {'imports MB':>10s} "
          f"{'wall s':>7s}  atoms (bits): red, uni_T, uni_S, syn")
    records = []
    for n in sorted(args.n_samples):
        for mode in ("streamed", "dense"):
            if mode == "dense" and n > args.dense_max:
                continue
            r = measure(mode, n, argv)
            records.append(r)
            atoms = ", ".join(f"{v:.4f}" for v in r["atoms"])
            print(f"{n:10,d} {mode:>8s} {r['peak_mb']:11.0f} {r['baseline_mb']:10.0f} "
                  f"{r['wall_s']:7.1f}  {atoms}", flush=True)
    print()
    print_ratio(records, "streamed")
    print_ratio(records, "dense")


if __name__ == "__main__":
    main()
