"""Public entry points of the discrete PID: from a pmf, a contingency table, or labels."""

import warnings

import numpy as np

from .._labels import encode_labels
from ..exceptions import ConvergenceWarning
from ._broja import estimate_cost, solve_broja, solve_broja_many
from ._information import task_informations
from ._result import PIDResult
from .._validation import (PID_MEASURES, check_base, check_choice, check_limit, check_max_iter,
                          check_paired, check_pmf, check_table, check_tol, check_verbose)

# Atoms within this much below zero are round-off and are set to zero; anything more
# negative is reported, never hidden.
ROUND_OFF = 1e-12
DEFAULT_TOL = 1e-8  # nats: the certified gap below which the BROJA solver has converged
# Size limits of a solve (see the max_memory and max_time parameters).
DEFAULT_MAX_MEMORY = 4e9  # bytes
DEFAULT_MAX_TIME = 600.0  # seconds, estimated


def pid_from_pmf(p, *, measure: str = "broja", base: float = 2,
                 tol: float = DEFAULT_TOL, max_iter: int = 100, verbose: int = 0,
                 max_memory: float | None = DEFAULT_MAX_MEMORY,
                 max_time: float | None = DEFAULT_MAX_TIME) -> PIDResult:
    """Partial information decomposition of a joint pmf ``p[t, s, y]``.

    Parameters
    ----------
    p : array-like of shape (n_teacher_values, n_student_values, n_classes)
        Joint probabilities with axes (T, S, Y); non-negative and summing to 1
        (within 1e-8).  Use :func:`pid_from_counts` for unnormalised tables.
    measure : {"broja", "mmi"}, default="broja"
        ``"broja"``: the exact measure of Bertschinger et al. (2014), solved with a
        certified interior-point method.  ``"mmi"``: redundancy = min(I(Y;T), I(Y;S)).
    base : float, default=2
        Logarithm base of the result (2: bits, ``np.e``: nats).
    tol : float, default=1e-8
        BROJA only: the certified bound (in nats) on the error of every atom that counts
        as converged; the solver keeps improving towards 1e-12 while it makes progress.
        A :class:`~skpid.exceptions.ConvergenceWarning` is issued if ``tol`` is not reached.
    max_iter : int, default=100
        BROJA only: maximum number of interior-point iterations (>= 1).  A solve stopped
        by it still returns certified bounds: every atom >= 0, off by at most ``gap``.
    verbose : int or bool, default=0
        BROJA only: ``0`` prints nothing; ``1`` prints the problem's size and the
        certified gap after each iteration (at most once a second) once a solve has run
        for 2 seconds; ``2`` prints from the start, every iteration.
    max_memory : float or None, default=4e9
        BROJA only: refuse (``MemoryError``), before allocating it, a problem whose
        solve is estimated to need more than this many bytes.  ``None``: no limit.
    max_time : float or None, default=600
        BROJA only: refuse (``ValueError``), before starting, a problem whose solve is
        estimated to take more than this many seconds.  The estimate is of CPU time,
        calibrated on one core of a 2-core machine (1 to 2.6 times measured times from
        30 x 30 x 10 to 300 x 300 x 50), and this is not a timeout.  ``None``: no limit.
        A 64 x 64 x 100 table is estimated at about 5 s, a 300 x 300 x 50 one at about
        4 minutes (measured: 3.3), a 500 x 500 x 100 one at about half an hour (refused
        by default).

    Returns
    -------
    PIDResult
        The four atoms, the mutual informations, H(Y) and, for BROJA, the optimal Q*.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import pid_from_pmf
    >>> p = np.zeros((2, 2, 2))          # AND gate: y = t and s, t and s fair bits
    >>> for t in (0, 1):
    ...     for s in (0, 1):
    ...         p[t, s, t & s] = 0.25
    >>> r = pid_from_pmf(p)
    >>> round(r.redundancy, 4), round(r.synergy, 4)
    (0.3113, 0.5)
    """
    options = _check_options(measure, base, tol, max_iter, verbose, max_memory, max_time)
    p = check_pmf(p)
    return _decompose(p, options, "p")


def pid_from_counts(counts, *, measure: str = "broja", base: float = 2,
                    tol: float = DEFAULT_TOL, max_iter: int = 100, verbose: int = 0,
                    max_memory: float | None = DEFAULT_MAX_MEMORY,
                    max_time: float | None = DEFAULT_MAX_TIME) -> PIDResult:
    """PID of a contingency table ``counts[t, s, y]`` (normalised to a pmf).

    Parameters are those of :func:`pid_from_pmf`; ``counts`` may hold any non-negative
    finite numbers (any real or bool dtype, any scale up to the largest float) with a
    positive total.

    Examples
    --------
    >>> from skpid import pid_from_counts
    >>> counts = [[[5, 0], [0, 0]], [[0, 0], [0, 5]]]   # T = S = Y
    >>> pid_from_counts(counts).redundancy
    1.0
    """
    options = _check_options(measure, base, tol, max_iter, verbose, max_memory, max_time)
    table = check_table(counts, "counts")
    if table.max() > np.finfo(np.float64).max / table.size:
        # Counts near the largest float overflow their total (to inf, which would turn
        # every cell into 0); counts divided by the largest one cannot (their total is
        # at most the number of cells). Only then: the extra division costs exactness
        # (H(Y) of a single class would be 1e-16 instead of 0).
        table /= table.max()
    return _decompose(table / table.sum(), options, "counts")


def pid(t, s, y, *, measure: str = "broja", base: float = 2,
        tol: float = DEFAULT_TOL, max_iter: int = 100, verbose: int = 0,
        max_memory: float | None = DEFAULT_MAX_MEMORY,
        max_time: float | None = DEFAULT_MAX_TIME) -> PIDResult:
    """PID of Y into teacher T and student S from paired samples (plug-in estimate).

    Parameters
    ----------
    t, s, y : array-like of shape (n_samples,)
        Discrete labels of the teacher, the student and the target: numbers, strings or
        other hashable values of one type per array (numpy arrays, lists, pandas Series
        or torch tensors of any dtype).  Missing labels (NaN, None) and arrays mixing
        types (e.g. ``[1, "1"]``) are refused; see ``skpid._labels``.
    measure, base, tol, max_iter, verbose, max_time
        As in :func:`pid_from_pmf`.
    max_memory : float or None, default=4e9
        As in :func:`pid_from_pmf`; it also bounds the dense table of the
        ``n_t x n_s x n_y`` distinct values (for either measure), checked from the numbers
        of distinct values before the table is built.

    Returns
    -------
    PIDResult
        The decomposition of the empirical joint distribution.  ``q`` is indexed by the
        sorted unique values of ``t``, ``s`` and ``y`` (order of first appearance for
        values that cannot be sorted).

    Examples
    --------
    >>> from skpid import pid
    >>> y = [0, 1, 0, 1]
    >>> pid(t=y, s=["a", "a", "b", "b"], y=y).unique_teacher
    1.0
    """
    options = _check_options(measure, base, tol, max_iter, verbose, max_memory, max_time)
    # The label encoder shared with the estimators: the same labels are accepted (torch
    # tensors of any dtype, pandas, tuples) or refused (missing, mixed types) everywhere.
    classes, codes = zip(*(encode_labels(v, name) for v, name in zip((t, s, y), "tsy")))
    check_paired(dict(zip("tsy", map(len, codes))))
    shape = tuple(map(len, classes))
    _check_table_size(shape, options)  # before the dense table is built
    counts = np.bincount(np.ravel_multi_index(codes, shape), minlength=int(np.prod(shape)))
    return _decompose(counts.reshape(shape) / len(codes[0]), options,
                      "the joint table of t, s and y")


def _check_options(measure, base, tol, max_iter, verbose, max_memory, max_time) -> dict:
    """Every option of the three entry points, validated in one place."""
    return {
        "measure": check_choice(measure, "measure", PID_MEASURES),
        "base": check_base(base),
        "tol": check_tol(tol),
        "max_iter": check_max_iter(max_iter),
        "verbose": check_verbose(verbose),
        "max_memory": check_limit(max_memory, "max_memory", "bytes"),
        "max_time": check_limit(max_time, "max_time", "seconds"),
    }


def _check_table_size(shape: tuple, options: dict) -> None:
    """Refuse labels whose dense joint table (and, for BROJA, solve) cannot fit.

    Counts the table's int64 counts, its float64 pmf and the solver's two working copies
    of it; for BROJA also the solver's own memory, which is at least
    :func:`~skpid._pid._broja.estimate_cost` without the Newton matrix (all values carry
    mass here).  The solver makes its own, complete, check once the table exists.
    """
    n_t, n_s, n_y = shape
    cells = float(n_t) * n_s * n_y
    needed = 4 * 8 * cells
    if options["measure"] == "broja" and n_y > 1:
        needed += estimate_cost(n_t, n_s, n_y).memory
    limit = options["max_memory"]
    if limit is not None and needed > limit:
        raise MemoryError(
            f"t, s and y have {n_t}, {n_s} and {n_y} distinct values: their joint table has "
            f"{cells:.4g} cells, and the PID needs about {needed / 1e9:.3g} GB, more than "
            f"max_memory={limit:.3g} bytes. Use fewer distinct values (for example fewer "
            f"clusters when discretizing representations), or raise max_memory (None: no "
            f"limit) on a machine with that much memory.")


def pid_from_counts_many(tables, *, measure: str = "broja", base: float = 2,
                         tol: float = DEFAULT_TOL, max_iter: int = 100,
                         max_memory: float | None = DEFAULT_MAX_MEMORY,
                         max_time: float | None = DEFAULT_MAX_TIME) -> list:
    """:func:`pid_from_counts` of several contingency tables, solved together.

    The small tables among them (bootstrap resamples, permutation surrogates, the layer
    pairs of a gate) are solved in batches by the dual interior-point method, one Newton
    system per iteration for all of them; the others one by one.  Each result is the one
    :func:`pid_from_counts` gives for that table, to within the certified ``gap`` of
    both.

    Parameters
    ----------
    tables : sequence of array-like of shape (n_teacher_values, n_student_values, n_classes)
        Contingency tables (shapes may differ), each as :func:`pid_from_counts` accepts.
    measure, base, tol, max_iter, max_memory, max_time
        As in :func:`pid_from_counts`, for every table (``max_memory`` and ``max_time``
        bound each table's solve).

    Returns
    -------
    list of PIDResult
        One per table, in order.  A :class:`~skpid.exceptions.ConvergenceWarning` is
        issued for each table whose solve did not reach ``tol``.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid._pid._core import pid_from_counts_many
    >>> rng = np.random.default_rng(0)
    >>> tables = [rng.integers(0, 5, size=(3, 3, 2)) for _ in range(4)]
    >>> results = pid_from_counts_many(tables)
    >>> [round(r.redundancy, 6) for r in results] == [
    ...     round(pid_from_counts(t).redundancy, 6) for t in tables]
    True
    """
    options = _check_options(measure, base, tol, max_iter, 0, max_memory, max_time)
    pmfs = []
    for i, counts in enumerate(tables):
        table = check_table(counts, f"tables[{i}]")
        if table.max() > np.finfo(np.float64).max / table.size:
            table /= table.max()  # see pid_from_counts
        pmfs.append(table / table.sum())
    solutions = [None] * len(pmfs)
    if options["measure"] == "broja":
        solutions = solve_broja_many(pmfs, tol=options["tol"], max_iter=options["max_iter"],
                                     max_memory=options["max_memory"],
                                     max_time=options["max_time"])
    return [_decompose(p, options, f"tables[{i}]", solution=sol)
            for i, (p, sol) in enumerate(zip(pmfs, solutions))]


def _decompose(p: np.ndarray, options: dict, name: str, solution=None) -> PIDResult:
    """The result for a validated pmf; ``solution``: its BROJA solution if already
    solved (:func:`pid_from_counts_many`)."""
    measure, base, tol = options["measure"], options["base"], options["tol"]
    info = task_informations(p)
    scale = 1.0 / float(np.log(base))
    if measure == "mmi":
        red = min(info["mi_teacher"], info["mi_student"])
        atoms = {
            "redundancy": red,
            "unique_teacher": info["mi_teacher"] - red,
            "unique_student": info["mi_student"] - red,
            "synergy": info["mi_joint"] - max(info["mi_teacher"], info["mi_student"]),
        }
        q, gap, converged, n_iter = None, 0.0, True, 0
    else:
        sol = solution if solution is not None else solve_broja(
            p, tol=tol, max_iter=options["max_iter"], max_memory=options["max_memory"],
            max_time=options["max_time"], verbose=options["verbose"], name=name)
        if not sol.converged:
            warnings.warn(
                f"BROJA solver stopped after {sol.n_iter} iterations with a certified gap of "
                f"{sol.gap:.3g} nats (tolerance {tol:g}); atoms may be off by that much.",
                ConvergenceWarning, stacklevel=3)
        atoms = broja_atoms(info, sol.objective)
        q, gap, converged, n_iter = sol.q, max(sol.gap, 0.0), sol.converged, sol.n_iter
    atoms = {atom: _clip_round_off(atom, value * scale) for atom, value in atoms.items()}
    return PIDResult(
        **atoms,
        mi_teacher=info["mi_teacher"] * scale,
        mi_student=info["mi_student"] * scale,
        mi_joint=info["mi_joint"] * scale,
        entropy_y=info["entropy_y"] * scale,
        base=base,
        measure=measure,
        q=q,
        gap=float(gap) * scale,
        converged=converged,
        n_iter=int(n_iter),
    )


def broja_atoms(info: dict, f_star: float) -> dict:
    """BROJA atoms (nats) from the task informations and f* = min_Q -H_Q(Y|T,S) (nats)."""
    uni_t = info["h_y_given_s"] + f_star
    return {
        "redundancy": info["mi_teacher"] - uni_t,
        "unique_teacher": uni_t,
        "unique_student": info["h_y_given_t"] + f_star,
        "synergy": -info["h_y_given_ts"] - f_star,
    }


def _clip_round_off(name: str, value: float) -> float:
    if value > 0:
        return float(value)
    if value >= -ROUND_OFF:
        return 0.0
    warnings.warn(f"{name} came out negative ({value:.3g}), beyond round-off; "
                  "it is returned unchanged.", ConvergenceWarning, stacklevel=4)
    return float(value)

