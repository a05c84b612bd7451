"""Timing and the machine's description, shared by the benchmarks (imported from the
scripts' own directory)."""

import os
import platform
import statistics
import time

import numpy as np


def timed(fn, repeats, clock=time.perf_counter):
    """Median and best time (``clock``: wall by default) of ``repeats`` calls of ``fn``,
    and its last result."""
    times, out = [], None
    for _ in range(repeats):
        start = clock()
        out = fn()
        times.append(clock() - start)
    return statistics.median(times), min(times), out


def interleaved(fns, repeats, warm_up=0, min_time=0.0, block=0.05, clock=time.perf_counter):
    """:func:`timed` for several functions timed in alternation, so that all see the same
    machine (on a shared virtual machine the speed drifts by tens of percent from one
    second to the next): each round calls each function for ``block`` seconds (at least
    once), and rounds go on until there are ``repeats`` of them and ``min_time`` seconds
    have passed.  Blocks of equal time rather than one call each, because a call right
    after another solver's runs with cold caches (measured: 12 % slower for skpid after
    cvxpy at 10 x 10 x 10).  ``warm_up`` untimed calls of each come first: the first calls
    at a new problem size pay for page faults and the allocator's growth (measured: the
    first four 10 x 10 x 10 BROJA solves of a process take up to 25 % longer than the
    rest).  ``clock`` measures each call (wall time by default; ``time.process_time``
    for the process's CPU time, which other load on the machine inflates less); blocks
    and ``min_time`` are wall time.  Returns ``{name: (median, best, last result)}``.
    """
    for fn in fns.values():
        for _ in range(warm_up):
            fn()
    times = {name: [] for name in fns}
    out = {}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or time.perf_counter() - start < min_time:
        for name, fn in fns.items():
            block_start = time.perf_counter()
            while True:
                t0 = clock()
                out[name] = fn()
                times[name].append(clock() - t0)
                if time.perf_counter() - block_start >= block:
                    break
        rounds += 1
    return {name: (statistics.median(t), min(t), out[name]) for name, t in times.items()}


def machine() -> str:
    """One line naming the machine and the versions a timing depends on."""
    import sklearn
    return (f"machine: {platform.machine()} {platform.processor() or ''}, "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}")
