"""PID of jointly Gaussian (T, S, Y) from their covariance matrix.

Assumptions: (T, S, Y) is jointly Gaussian, so every information quantity is a function of
the covariance alone (only linear, second-order dependence is seen).  For class labels,
callers pass a one-hot encoding of Y (one class dropped), i.e. the PID of the Gaussian
with the same first and second moments as (T, S, onehot(Y)).

Measures
--------
``"mmi"``: Red = min(I(Y;T), I(Y;S)) (Barrett 2015).
``"broja"``: the BROJA definition restricted to Gaussian distributions (the "~I_G" of
Venkatesh & Schamberg): UniT = min I_Q(Y;T|S) over jointly Gaussian Q with the same
(T, Y) and (S, Y) covariances.  Only the conditional cross-covariance
C = Cov_Q(T, S | Y) is free; with A = Cov(T|Y), B = Cov(S|Y) we write
C = L_A K L_B^T (L the Cholesky factors), where K = M (I + M^T M)^{-1/2} is a strict
contraction for every real matrix M, so the search over M is unconstrained (L-BFGS).
It starts at conditional independence (K = 0).  For a univariate target the optimum is
known in closed form, min_Q I_Q(Y;T,S) = max(I(Y;T), I(Y;S)) (Barrett 2015), so the two
measures coincide there; the tests check that the optimiser finds it.
"""

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma

from ._result import PIDResult
from .._validation import PID_MEASURES, check_choice


def _logdet(m: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(m)
    if sign <= 0:
        raise np.linalg.LinAlgError("matrix is not positive definite")
    return float(value)


def gaussian_mi(cov: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """I(A; B) in nats for jointly Gaussian blocks ``a`` and ``b`` (index arrays) of ``cov``."""
    ab = np.concatenate([a, b])
    return 0.5 * (_logdet(cov[np.ix_(a, a)]) + _logdet(cov[np.ix_(b, b)])
                  - _logdet(cov[np.ix_(ab, ab)]))


def _whiten(cov: np.ndarray, blocks: list) -> np.ndarray:
    """Covariance of the blocks after whitening each one separately (PID is invariant)."""
    inv = np.zeros_like(cov)
    for idx in blocks:
        chol = np.linalg.cholesky(cov[np.ix_(idx, idx)])
        inv[np.ix_(idx, idx)] = np.linalg.inv(chol)
    return inv @ cov @ inv.T


def _contraction(m: np.ndarray) -> np.ndarray:
    """M (I + M^T M)^{-1/2}: singular values s / sqrt(1 + s^2) < 1."""
    u, sv, vt = np.linalg.svd(m, full_matrices=False)
    return (u * (sv / np.sqrt(1.0 + sv ** 2))) @ vt


def min_joint_information(cov: np.ndarray, n_teacher: int, n_student: int) -> float:
    """min over Gaussian Q in Delta_P of I_Q(Y; T, S), in nats (see module docstring)."""
    d_t, d_s = n_teacher, n_student
    t, s = np.arange(d_t), np.arange(d_t, d_t + d_s)
    y = np.arange(d_t + d_s, cov.shape[0])
    w = _whiten(cov, [t, s, y])  # Cov(T) = Cov(S) = Cov(Y) = I
    c_ty, c_sy = w[np.ix_(t, y)], w[np.ix_(s, y)]
    through_y = c_ty @ c_sy.T  # Cov(T, S) explained by Y
    l_a = np.linalg.cholesky(np.eye(d_t) - c_ty @ c_ty.T)
    l_b = np.linalg.cholesky(np.eye(d_s) - c_sy @ c_sy.T)

    def objective(flat):
        k = _contraction(flat.reshape(d_t, d_s))
        g = through_y + l_a @ k @ l_b.T  # whitened Cov_Q(T, S)
        _, joint = np.linalg.slogdet(np.eye(d_s) - g.T @ g)
        _, cond = np.linalg.slogdet(np.eye(d_s) - k.T @ k)
        # I_Q(Y;T,S) = H(T,S) - H(T,S|Y)
        #            = 0.5 log det(I - G^T G) - 0.5 log det(I - K^T K) + const.
        return 0.5 * joint - 0.5 * cond

    const = -0.5 * (_logdet(l_a @ l_a.T) + _logdet(l_b @ l_b.T))
    res = minimize(objective, np.zeros(d_t * d_s), method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
    return float(min(res.fun, objective(np.zeros(d_t * d_s))) + const)


def gaussian_pid(cov, n_teacher: int, n_student: int, *, measure: str = "broja",
                 base: float = 2) -> PIDResult:
    """PID of a jointly Gaussian target Y into sources T and S from a covariance matrix.

    Parameters
    ----------
    cov : array-like of shape (d, d)
        Symmetric positive definite covariance of (T, S, Y) in that order, with
        ``n_teacher`` teacher and ``n_student`` student dimensions; the remaining
        ``d - n_teacher - n_student >= 1`` dimensions are the target.
    n_teacher, n_student : int
        Dimensions of T and S (each >= 1).
    measure : {"broja", "mmi"}, default="broja"
        See the module docstring.  Both assume joint Gaussianity.
    base : float, default=2
        Logarithm base of the result.

    Returns
    -------
    PIDResult
        ``entropy_y`` is NaN (a differential entropy is not a discrete H(Y)); ``q`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid._pid._gaussian import gaussian_pid
    >>> cov = np.array([[1.0, 0.0, 0.6], [0.0, 1.0, 0.3], [0.6, 0.3, 1.0]])
    >>> r = gaussian_pid(cov, 1, 1)
    >>> bool(abs(r.redundancy - min(r.mi_teacher, r.mi_student)) < 1e-9)
    True
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square 2-D matrix; got shape {cov.shape}.")
    check_choice(measure, "measure", PID_MEASURES)
    d_t, d_s = int(n_teacher), int(n_student)
    if d_t < 1 or d_s < 1 or d_t + d_s >= cov.shape[0]:
        raise ValueError(f"n_teacher and n_student must be >= 1 and leave >= 1 target "
                         f"dimension in cov of shape {cov.shape}; got {d_t} and {d_s}.")
    if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T, atol=1e-10):
        raise ValueError("cov must be finite and symmetric.")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError("cov must be positive definite (a degenerate Gaussian has "
                         "infinite mutual information).") from None
    t, s = np.arange(d_t), np.arange(d_t, d_t + d_s)
    y = np.arange(d_t + d_s, cov.shape[0])
    ts = np.concatenate([t, s])
    mi_t, mi_s, mi_ts = gaussian_mi(cov, y, t), gaussian_mi(cov, y, s), gaussian_mi(cov, y, ts)
    if measure == "mmi":
        min_joint = max(mi_t, mi_s)
    else:
        # max(I(Y;T), I(Y;S)) <= min_Q I_Q(Y;T,S) <= I(Y;T,S) because Q keeps the pairwise
        # marginals and P is itself a candidate; clip the optimiser's round-off.
        min_joint = min(max(min_joint_information(cov, d_t, d_s), max(mi_t, mi_s)), mi_ts)
    atoms = {
        "redundancy": mi_t + mi_s - min_joint,
        "unique_teacher": min_joint - mi_s,
        "unique_student": min_joint - mi_t,
        "synergy": mi_ts - min_joint,
    }
    scale = 1.0 / np.log(base)
    return PIDResult(**{k: max(float(v), 0.0) * scale for k, v in atoms.items()},
                     mi_teacher=mi_t * scale, mi_student=mi_s * scale,
                     mi_joint=mi_ts * scale, entropy_y=float("nan"), base=float(base),
                     measure=f"gaussian-{measure}", q=None, gap=0.0, converged=True)


def _expected_logdet_bias(dim: int, n_samples: int) -> float:
    """E[log det S] - log det Sigma for the sample covariance S (``ddof=1``) of
    ``n_samples`` Gaussian draws in ``dim`` dimensions: sum_i psi((n - i) / 2) +
    dim * log(2 / (n - 1)), i = 1..dim (the log of a product of chi-square variables)."""
    i = np.arange(1, dim + 1)
    return float(digamma((n_samples - i) / 2.0).sum() + dim * np.log(2.0 / (n_samples - 1)))


def gaussian_noise_floor(dim_a: int, dim_b: int, n_samples: int) -> float:
    """Mean plug-in estimate of I(A; B), in nats, when A and B are independent Gaussians.

    The plug-in mutual information of a sample covariance is biased upward: with
    ``n_samples`` draws of independent ``dim_a``- and ``dim_b``-dimensional Gaussian
    blocks its expectation is exactly
    ``0.5 * (b(dim_a) + b(dim_b) - b(dim_a + dim_b))`` with ``b`` the bias of the
    log-determinant (about ``dim_a * dim_b / (2 n)`` for large ``n``).  It is what pure
    noise reports, and it grows without bound as ``n_samples`` approaches
    ``dim_a + dim_b``; below ``dim_a + dim_b + 1`` the sample covariance is singular and
    the estimate is infinite.

    Parameters
    ----------
    dim_a, dim_b : int
        Dimensions of the two blocks (>= 1).
    n_samples : int
        Number of samples; must exceed ``dim_a + dim_b``.

    Returns
    -------
    float
        The expected estimate, in nats.

    Examples
    --------
    >>> from skpid._pid._gaussian import gaussian_noise_floor
    >>> round(gaussian_noise_floor(1, 1, 1000), 5)   # about 1 * 1 / (2 * 1000)
    0.0005
    """
    dim_a, dim_b, n = int(dim_a), int(dim_b), int(n_samples)
    if dim_a < 1 or dim_b < 1:
        raise ValueError(f"dim_a and dim_b must be >= 1; got {dim_a} and {dim_b}.")
    if n <= dim_a + dim_b:
        raise ValueError(f"n_samples must exceed dim_a + dim_b = {dim_a + dim_b} (the sample "
                         f"covariance is singular otherwise); got {n}.")
    return 0.5 * (_expected_logdet_bias(dim_a, n) + _expected_logdet_bias(dim_b, n)
                  - _expected_logdet_bias(dim_a + dim_b, n))
