"""Timing and the machine's description, shared by the benchmarks (imported from the
scripts' own directory)."""

import os
import platform
import statistics
import time

import numpy as np


def timed(fn, repeats, warm_up=0):
    """Median and best wall time of ``repeats`` calls of ``fn``, and its last result.

    ``warm_up`` untimed calls come first: the first calls at a new problem size pay for
    page faults and the allocator's growth (measured: the first four 10 x 10 x 10 BROJA
    solves of a process take up to 25 % longer than the rest).
    """
    for _ in range(warm_up):
        fn()
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), out


def machine() -> str:
    """One line naming the machine and the versions a timing depends on."""
    import sklearn
    return (f"machine: {platform.machine()} {platform.processor() or ''}, "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}")
