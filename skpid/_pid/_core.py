"""Public entry points of the discrete PID: from a pmf, a contingency table, or labels."""

import warnings

import numpy as np

from ..exceptions import ConvergenceWarning
from ._broja import solve_broja
from ._information import task_informations
from ._result import PIDResult
from ._validation import check_base, check_labels, check_measure, check_pmf, check_table

# Atoms within this much below zero are round-off and are set to zero; anything more
# negative is reported, never hidden.
ROUND_OFF = 1e-12
DEFAULT_TOL = 1e-8  # nats: the certified gap below which the BROJA solver has converged


def pid_from_pmf(p, *, measure: str = "broja", base: float = 2,
                 tol: float = DEFAULT_TOL, max_iter: int = 100) -> PIDResult:
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
        BROJA only: maximum number of interior-point iterations.

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
    measure = check_measure(measure)
    base = check_base(base)
    p = check_pmf(p)
    return _decompose(p, measure, base, tol, max_iter)


def pid_from_counts(counts, *, measure: str = "broja", base: float = 2,
                    tol: float = DEFAULT_TOL, max_iter: int = 100) -> PIDResult:
    """PID of a contingency table ``counts[t, s, y]`` (normalised to a pmf).

    Parameters are those of :func:`pid_from_pmf`; ``counts`` may hold any non-negative
    finite numbers with a positive total.

    Examples
    --------
    >>> from skpid import pid_from_counts
    >>> counts = [[[5, 0], [0, 0]], [[0, 0], [0, 5]]]   # T = S = Y
    >>> pid_from_counts(counts).redundancy
    1.0
    """
    measure = check_measure(measure)
    base = check_base(base)
    table = check_table(counts, "counts")
    return _decompose(table / table.sum(), measure, base, tol, max_iter)


def pid(t, s, y, *, measure: str = "broja", base: float = 2,
        tol: float = DEFAULT_TOL, max_iter: int = 100) -> PIDResult:
    """PID of Y into teacher T and student S from paired samples (plug-in estimate).

    Parameters
    ----------
    t, s, y : array-like of shape (n_samples,)
        Discrete labels of the teacher, the student and the target: ints, strings or
        any hashable values.
    measure, base, tol, max_iter
        As in :func:`pid_from_pmf`.

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
    measure = check_measure(measure)
    base = check_base(base)
    t, s, y = check_labels(t, s, y)
    codes = [_encode(values) for values in (t, s, y)]
    shape = tuple(int(c.max()) + 1 for c in codes)
    counts = np.bincount(np.ravel_multi_index(codes, shape), minlength=int(np.prod(shape)))
    return _decompose(counts.reshape(shape) / len(t), measure, base, tol, max_iter)


def _encode(values: np.ndarray) -> np.ndarray:
    """Integer codes 0..k-1 for arbitrary hashable labels."""
    try:
        return np.unique(values, return_inverse=True)[1].ravel()
    except TypeError:  # unorderable objects: first-appearance order
        index = {}
        return np.array([index.setdefault(v, len(index)) for v in values.tolist()])


def _decompose(p: np.ndarray, measure: str, base: float, tol: float, max_iter: int) -> PIDResult:
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
        q, gap, converged = None, 0.0, True
    else:
        sol = solve_broja(p, tol=tol, max_iter=max_iter)
        if not sol.converged:
            warnings.warn(
                f"BROJA solver stopped after {sol.n_iter} iterations with a certified gap of "
                f"{sol.gap:.3g} nats (tolerance {tol:g}); atoms may be off by that much.",
                ConvergenceWarning, stacklevel=3)
        atoms = broja_atoms(info, sol.objective)
        q, gap, converged = sol.q, max(sol.gap, 0.0), sol.converged
    atoms = {name: _clip_round_off(name, value * scale) for name, value in atoms.items()}
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

