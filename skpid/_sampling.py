"""From discrete codes to PID estimates: plug-in joint, bias correction, bootstrap CIs.

The plug-in estimate (PID of the empirical joint of the codes) is biased upward when
the k_T * k_S * |Y| cells are not well covered by the samples.  Two remedies:

* ``bias_correction="permutation"``: the shuffle correction.  The PID of surrogates in
  which ``y`` is randomly permuted (T and S keep their joint, every dependence on Y is
  destroyed, so every true atom of a surrogate is 0) estimates the bias of each atom at
  this sample size and these alphabet sizes; its mean over ``n_permutations`` surrogates
  is subtracted from each atom.  Corrected atoms below zero are clipped to 0, and the
  corrected mutual informations are then *defined* as the sums of the corrected atoms
  (I(Y;T) = Red + UniT, I(Y;S) = Red + UniS, I(Y;T,S) = all four), so the PID
  identities hold exactly for the reported numbers.  The correction is exact for
  independent data and conservative (it may over-subtract) when Y is strongly
  dependent on T and S.
* ``n_bootstrap > 0``: rows are resampled with replacement and the reported statistic is
  recomputed on each resample: the plug-in PID or, with the correction, the corrected
  PID with the bias held at its value on the full sample.  The ``confidence`` interval
  is the *basic* bootstrap interval of those replicates (Davison & Hinkley, *Bootstrap
  Methods and their Application*, 1997; ``scipy.stats.bootstrap(..., method="basic")``):
  ``[2 * est - q_hi, 2 * est - q_lo]`` with ``est`` the reported estimate and ``q_lo``,
  ``q_hi`` the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
  replicates (linear interpolation); the lower end is then clipped at 0 and the upper
  end at the lower (every quantity is an information, never negative).  The basic
  interval rather than the percentile one ``[q_lo, q_hi]``: the plug-in is biased
  upward and a resample, which repeats rows, more so; reflecting the quantiles about
  the estimate moves the interval down by that excess, the percentile interval up.
"""

from dataclasses import dataclass, field, fields

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.utils import check_random_state

from ._pid._core import pid_from_counts, pid_from_counts_many
from ._pid._result import ATOMS, PIDResult

QUANTITIES = ATOMS + ("mi_teacher", "mi_student", "mi_joint")
BIAS_CORRECTIONS = (None, "permutation")
# Certified accuracy (nats) demanded of each solve before a ConvergenceWarning: sampling
# error of an estimate from data is orders of magnitude larger, so 1e-6 is ample (the
# solver still aims for 1e-12 and the reached ``gap`` is reported).
SOLVER_TOL = 1e-6


@dataclass(frozen=True, repr=False)
class PIDEstimate(PIDResult):
    """A :class:`~skpid.PIDResult` estimated from samples, with its uncertainty.

    Attributes
    ----------
    ci : dict or None
        ``{name: (low, high)}`` for the four atoms and the three mutual informations:
        basic bootstrap intervals at level ``confidence`` (see :func:`basic_interval`);
        ``None`` without bootstrap.
    confidence : float or None
        Level of ``ci``.
    bias : dict or None
        The amounts subtracted by the bias correction (mean surrogate PID), per quantity;
        ``None`` without correction.
    plugin : dict or None
        The uncorrected plug-in values when a correction was applied.
    n_samples : int
        Number of samples the estimate is based on.
    """

    ci: dict | None = field(default=None, compare=False)
    confidence: float | None = None
    bias: dict | None = field(default=None, compare=False)
    plugin: dict | None = field(default=None, compare=False)
    n_samples: int = 0

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.ci is None:
            return text
        cis = ", ".join(f"{name}=[{self._shown(lo):.4g}, {self._shown(hi):.4g}]"
                        for name, (lo, hi) in self.ci.items() if name in ATOMS)
        return f"{text[:-1]}, ci{self.confidence:g}=({cis}))"


def draw_seeds(random_state, size: int) -> np.ndarray:
    """``size`` seeds (int32 range) drawn from ``random_state`` (see
    :func:`sklearn.utils.check_random_state`), e.g. one per surrogate or per block.

    Every seeded step draws its seeds here, so that two entry points that draw the same
    number from the same ``random_state`` seed their steps alike.
    """
    return check_random_state(random_state).randint(np.iinfo(np.int32).max, size=size)


def joint_counts(t: np.ndarray, s: np.ndarray, y: np.ndarray, shape: tuple) -> np.ndarray:
    """Contingency table ``counts[t, s, y]`` of integer codes (one vectorised bincount)."""
    flat = np.ravel_multi_index((t, s, y), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape).astype(np.float64)


def _values(result: PIDResult) -> np.ndarray:
    return np.array([getattr(result, name) for name in QUANTITIES])


# Only codes that occur matter to a plug-in PID (empty cells carry no mass), and a
# discretizer may emit codes up to a large bound (quantile bins of several components)
# while a table is allocated up to the largest code.  Samples held in memory are counted
# on their codes renumbered over those that occur (compact_codes, for PIDEstimator); a
# table counted chunk by chunk on the original codes loses its empty codes afterwards
# (counts_pid, for score_chunks).  Both give the same counts.
def compact_codes(codes: np.ndarray) -> np.ndarray:
    """Codes renumbered 0, 1, ... (in increasing order) over the values that occur."""
    return np.unique(codes, return_inverse=True)[1].ravel()


def counts_pid(counts: np.ndarray, measure: str, base: float) -> PIDResult:
    """Plug-in PID of a table ``counts[t, s, y]`` of teacher codes, student codes and
    classes, without the teacher and student codes that no sample has."""
    counts = counts[counts.sum(axis=(1, 2)) > 0][:, counts.sum(axis=(0, 2)) > 0]
    return pid_from_counts(counts, measure=measure, base=base, tol=SOLVER_TOL)


def codes_pid(t, s, y, shape, measure, base, rows=None, y_rows=None) -> PIDResult:
    """Plug-in PID of codes, optionally of the rows ``rows`` paired with labels ``y_rows``."""
    if rows is not None:
        t, s, y = t[rows], s[rows], y[y_rows]
    return pid_from_counts(joint_counts(t, s, y, shape), measure=measure, base=base,
                           tol=SOLVER_TOL)


def codes_pid_many(t, s, y, shape, measure, base, resamples) -> list:
    """:func:`codes_pid` of each ``(rows, y_rows)`` of ``resamples``, their tables solved
    together (:func:`~skpid._pid._core.pid_from_counts_many`)."""
    tables = [joint_counts(t[rows], s[rows], y[y_rows], shape) for rows, y_rows in resamples]
    return pid_from_counts_many(tables, measure=measure, base=base, tol=SOLVER_TOL)


# Functions ``fn`` of estimate_pid (as ``functools.partial`` of them) whose surrogates can
# be computed together: fn -> its batched form, called with fn's arguments and the list
# of (rows, y_rows).
_BATCHED = {codes_pid: codes_pid_many}


def _surrogate_batch(fn, n, seeds, kind) -> np.ndarray:
    """Values of ``fn(rows, y_rows)`` on permuted or bootstrap-resampled surrogates."""
    resamples = []
    for seed in seeds:
        rng = np.random.RandomState(seed)
        if kind == "permutation":
            resamples.append((np.arange(n), rng.permutation(n)))
        else:
            rows = rng.randint(n, size=n)
            resamples.append((rows, rows))
    many = _BATCHED.get(getattr(fn, "func", None))
    if many is not None and not fn.keywords:
        results = many(*fn.args, resamples=resamples)
    else:
        results = [fn(rows=rows, y_rows=y_rows) for rows, y_rows in resamples]
    out = np.empty((len(seeds), len(QUANTITIES)))
    for i, result in enumerate(results):
        out[i] = _values(result)
    return out


def _run_surrogates(fn, n, seeds, kind, n_jobs, verbose) -> np.ndarray:
    if len(seeds) == 0:
        return np.empty((0, len(QUANTITIES)))
    # A few batches per worker keeps joblib's per-task overhead small next to
    # millisecond-sized solves; with ``verbose``, at least 20 for a useful progress log.
    # (How surrogates are split does not change any result: a batched solve gives each
    # table the bits of a single solve, see skpid/_pid/_dual.py.)
    n_batches = min(len(seeds), max(4 * max(1, effective_n_jobs(n_jobs)),
                                    20 if verbose else 0))
    batches = [b for b in np.array_split(np.asarray(seeds), n_batches) if len(b)]
    results = Parallel(n_jobs=n_jobs, verbose=verbose)(
        delayed(_surrogate_batch)(fn, n, batch, kind) for batch in batches)
    return np.vstack(results)


def estimate_pid(fn, n_samples: int, *, bias_correction=None, n_permutations: int = 20,
                 n_bootstrap: int = 0, confidence: float = 0.95, n_jobs=None,
                 verbose: int = 0, random_state=None) -> PIDEstimate:
    """PID estimate with optional bias correction and bootstrap CIs.

    ``fn(rows=None, y_rows=None)`` returns the plug-in :class:`PIDResult` of the
    samples (all of them when ``rows`` is None, else the sources of ``rows`` paired with
    the targets of ``y_rows``); it must be picklable for ``n_jobs != 1`` (a
    ``functools.partial`` of a module-level function).  ``random_state`` seeds the
    surrogates; see the module docstring for the methods.
    """
    rng = check_random_state(random_state)
    perm_seeds = draw_seeds(rng, n_permutations if bias_correction == "permutation" else 0)
    boot_seeds = draw_seeds(rng, n_bootstrap)

    raw_result = fn()
    raw = _values(raw_result)
    estimate, bias, plugin, bias_values = raw, None, None, None
    if bias_correction == "permutation":
        surrogates = _run_surrogates(fn, n_samples, perm_seeds, "permutation", n_jobs,
                                     verbose)
        bias_values = surrogates.mean(axis=0)
        estimate = _corrected(raw, bias_values)
        bias = dict(zip(QUANTITIES, bias_values.tolist()))
        plugin = dict(zip(QUANTITIES, raw.tolist()))

    ci = None
    if n_bootstrap > 0:
        boot = _run_surrogates(fn, n_samples, boot_seeds, "bootstrap", n_jobs, verbose)
        if bias_values is not None:  # replicates of the reported, corrected, statistic
            boot = _corrected(boot, bias_values)
        low, high = basic_interval(estimate, boot, confidence)
        ci = {name: (float(lo), float(hi)) for name, lo, hi in zip(QUANTITIES, low, high)}

    values = dict(zip(QUANTITIES, (float(v) for v in estimate)))
    kept = {f.name: getattr(raw_result, f.name) for f in fields(PIDResult)
            if f.name not in QUANTITIES}
    return PIDEstimate(**values, **kept, ci=ci, confidence=confidence if ci else None,
                       bias=bias, plugin=plugin, n_samples=int(n_samples))


def basic_interval(estimate: np.ndarray, replicates: np.ndarray, confidence: float) -> tuple:
    """The basic bootstrap interval of each quantity, clipped to non-negative values.

    Parameters
    ----------
    estimate : ndarray of shape (n_quantities,)
        The reported estimate.
    replicates : ndarray of shape (n_resamples, n_quantities)
        The statistic on each bootstrap resample.
    confidence : float
        Level of the interval, in (0, 1).

    Returns
    -------
    low, high : ndarray of shape (n_quantities,)
        ``2 * estimate - q_hi`` and ``2 * estimate - q_lo``, ``q_lo`` and ``q_hi`` the
        ``(1 -/+ confidence) / 2`` quantiles of ``replicates``: the interval of
        ``scipy.stats.bootstrap(..., method="basic")``; then ``low`` is clipped at 0 and
        ``high`` at ``low``.
    """
    alpha = (1.0 - confidence) / 2.0
    q_lo, q_hi = np.quantile(replicates, [alpha, 1.0 - alpha], axis=0)
    low = np.maximum(2.0 * estimate - q_hi, 0.0)
    high = np.maximum(2.0 * estimate - q_lo, low)
    return low, high


def _corrected(raw: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Atoms minus their bias, clipped at 0; the informations rebuilt from the atoms.

    ``raw`` holds the quantities along its last axis: one estimate, or one per row.
    """
    red, uni_t, uni_s, syn = np.moveaxis(np.maximum(raw[..., :4] - bias[:4], 0.0), -1, 0)
    return np.stack([red, uni_t, uni_s, syn, red + uni_t, red + uni_s,
                     red + uni_t + uni_s + syn], axis=-1)
