"""Benchmark: skpid's BROJA solver against generic convex solvers, in one run.

Prints, for seeded random pmfs of several shapes, the median wall time of skpid, of a
vectorised cvxpy + Clarabel formulation of the same problem, and of dit's
``PID_BROJA(method="cone")`` (in a child process, abandoned where a single solve exceeds
``--dit-limit`` seconds; cvxpy is skipped beyond ``--cvxpy-max-cells`` cells), the max abs
difference of the atoms (bits) and the speed ratios.

    pip install ".[bench]"
    python benchmarks/bench_pid_solver.py [--repeats 3] [--shapes 10,10,10 20,20,10]
"""

import argparse
import multiprocessing
import os
import platform
import queue as queue_module
import time

import numpy as np

from skpid import pid_from_pmf
from skpid._pid._core import broja_atoms
from skpid._pid._information import task_informations
from skpid._testing import cvxpy_broja_objective, dit_broja_atoms

from _timing import timed

SHAPES = [(2, 2, 2), (5, 5, 5), (10, 10, 10), (20, 20, 10), (30, 30, 10), (10, 10, 100),
          (30, 30, 30), (64, 64, 100)]
ATOMS = ("redundancy", "unique_teacher", "unique_student", "synergy")
TIGHT = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11}


def atoms_from_objective(p, f_star):
    """BROJA atoms in bits from min -H_Q(Y|T,S) (nats)."""
    atoms = broja_atoms(task_informations(p), f_star)
    return np.array([atoms[name] for name in ATOMS]) / np.log(2)


def _timed_child(fn, arg, queue):
    start = time.perf_counter()
    out = fn(arg)
    queue.put((time.perf_counter() - start, out))


def run_with_limit(fn, arg, limit):
    """(seconds, fn(arg)) from a child process, or None if it runs past ``limit`` seconds.

    dit's solver cannot be interrupted from inside, so it runs in a process we can kill.
    """
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_timed_child, args=(fn, arg, queue))
    child.start()
    try:
        return queue.get(timeout=limit)
    except queue_module.Empty:
        return None
    finally:
        child.terminate()
        child.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", nargs="*", default=None, help="e.g. 10,10,10 30,30,10")
    parser.add_argument("--dit-limit", type=float, default=60.0)
    parser.add_argument("--cvxpy-max-cells", type=int, default=100_000)
    args = parser.parse_args()
    shapes = ([tuple(int(v) for v in s.split(",")) for s in args.shapes]
              if args.shapes else SHAPES)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}, numpy {np.__version__}")
    # Warm-up: imports and first-call overheads of all three.
    warm = np.random.default_rng(0).dirichlet(np.ones(8)).reshape(2, 2, 2)
    pid_from_pmf(warm), cvxpy_broja_objective(warm), dit_broja_atoms(warm)
    header = (f"{'shape':>14s} {'skpid s':>9s} {'gap bits':>9s} {'cvxpy s':>9s} {'dit s':>9s} "
              f"{'|d| cvxpy':>10s} {'|d| dit':>10s} {'x cvxpy':>8s} {'x dit':>8s} {'x best':>8s}")
    print(header)
    for i, shape in enumerate(shapes):
        p = np.random.default_rng(1000 + i).dirichlet(np.ones(np.prod(shape))).reshape(shape)
        t_ours, _, ours = timed(lambda: pid_from_pmf(p), args.repeats)
        ours_atoms = np.array([getattr(ours, a) for a in ATOMS])
        row = {"cvxpy": (np.nan, np.nan), "dit": (np.nan, np.nan)}
        # cvxpy runs in this process (its solver threads do not survive a fork), so it is
        # skipped beyond --cvxpy-max-cells rather than abandoned after a time limit.
        if np.prod(shape) <= args.cvxpy_max_cells:
            start = time.perf_counter()
            cvx_value = cvxpy_broja_objective(p)
            t_cvx = time.perf_counter() - start
            if t_cvx < 20:  # cheap enough for a median of several runs
                t_cvx = timed(lambda: cvxpy_broja_objective(p), args.repeats)[0]
            # Agreement is judged against a tight-tolerance solve (untimed): at Clarabel's
            # default tolerances (1e-8) its atoms are off by up to a few 1e-7 bits.
            tight = cvxpy_broja_objective(p, **TIGHT)
            row["cvxpy"] = (t_cvx, np.abs(atoms_from_objective(p, tight) - ours_atoms).max())
        dit_out = run_with_limit(dit_broja_atoms, p, args.dit_limit)
        if dit_out is not None:
            t_dit, dit_atoms = dit_out
            diff = np.abs(np.array([dit_atoms[a] for a in ATOMS]) - ours_atoms).max()
            row["dit"] = (t_dit, diff)
        anchors = [t for t in (row["cvxpy"][0], row["dit"][0]) if not np.isnan(t)]
        best = min(anchors) if anchors else np.nan
        print(f"{str(shape):>14s} {t_ours:9.4f} {ours.gap:9.1e} {row['cvxpy'][0]:9.3f} "
              f"{row['dit'][0]:9.3f} {row['cvxpy'][1]:10.1e} {row['dit'][1]:10.1e} "
              f"{row['cvxpy'][0] / t_ours:8.1f} {row['dit'][0] / t_ours:8.1f} "
              f"{best / t_ours:8.1f}", flush=True)


if __name__ == "__main__":
    main()
