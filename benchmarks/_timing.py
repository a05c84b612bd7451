"""Timing shared by the benchmarks (imported from the scripts' own directory)."""

import statistics
import time


def timed(fn, repeats):
    """Median and best wall time of ``repeats`` calls of ``fn``, and its last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), out
