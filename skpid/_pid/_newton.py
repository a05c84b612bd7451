"""The interior-point Newton systems of the BROJA solver (see ``_broja.py``).

``H = sum_y K_y A M_y^+ A^T K_y`` is the Hessian of the outer problem over the (t, s)
pairs; this module forms it (or parts of it), applies it matrix-free, and solves
``(H + diag(z / w)) dw = rhs``.
"""

import functools

import numpy as np
from scipy.linalg import LinAlgError, get_lapack_funcs

# Above this many live pairs no dense Newton matrix of all pairs is formed (it would need
# 4 * n^2 bytes): the system is solved by CG, preconditioned by a factor of the pairs that
# are still coupled where they are at most this many, else by the diagonal alone.
_DENSE_PAIRS = 8192
# Largest broadcast temporary (elements) for forming the Newton matrix in one go.
_BROADCAST_LIMIT = 2 ** 22
# Conjugate-gradient steps at most per Newton system: preconditioned by the diagonal
# alone (matrix-free problems whose coupled pairs do not fit a factor), or by a factor of
# the coupled pairs of a matrix-free problem.
_CG_DIAGONAL = 500
_CG_COUPLED = 200
# Nominal speeds (flops per second) behind the choice between them: forming and factoring
# a float32 matrix (BLAS 3), and the memory-bound Hessian products (see _broja's cost
# model).
_FLOAT32_FLOPS = 3e10
_PRODUCT_FLOPS = 1e9
# Up to this many (t, s) pairs in all, a Newton matrix over some of them (dead pairs, or
# the coupled pairs of the preconditioner) is cut from the whole matrix.
_WHOLE_PAIRS = 1024


class NewtonSystem:
    """The interior-point Newton system ``(H + diag(z / w)) dw = rhs`` over the live pairs.

    ``H`` is applied exactly and matrix-free (``sum_y G_y M_y G_y^T``, a few passes over
    ``q``), and the system is solved by conjugate gradients preconditioned with a
    single-precision Cholesky factor of the (diagonally scaled) dense matrix.  Single
    precision halves the cost of forming and factoring the dense matrix; the float64
    iterations restore full accuracy in a few steps.  Pairs whose barrier term dominates
    their own curvature by ``decouple`` (they are heading to zero mass) enter the
    preconditioner by their diagonal alone, which shrinks the factorisation to the pairs
    that still matter; the exact operator keeps their couplings.
    """

    def __init__(self, prob, live_idx, decouple=1e3, exact_size=200):
        self.prob, self.live_idx = prob, live_idx
        self.decouple, self.exact_size = decouple, exact_size
        self.diagonal_suffices = True
        self.buffer = None
        self.k_layouts = None

    def update(self, sc, w, z, rtol=1e-12):
        """Move the system to a new iterate and factor its preconditioner.

        ``rtol`` is the relative residual to which CG solves (inexact Newton: far from
        the optimum a rough direction does as well).  Raises LinAlgError if no factor can
        be had (the caller stops iterating).
        """
        self.sc, self.rtol = sc, rtol
        self.barrier = z / w
        self.k_layouts = None  # made by the first matvec
        # Small systems: a float64 factor of all pairs solves exactly (the diagonal scaling
        # keeps it well conditioned however large a barrier term grows), and iterating
        # would only add overhead.  Large ones: float32 halves forming and factoring, and
        # CG restores float64 accuracy.
        self.exact = len(self.live_idx) <= self.exact_size
        self.matrix_free = len(self.live_idx) > _DENSE_PAIRS
        if self.exact:
            try:
                self._factorize_exact()
            except LinAlgError:
                # H is semi-definite in exact arithmetic; where round-off in M_y^+ makes it
                # indefinite, a modified Newton step (eigenvalues clipped) still descends.
                self._factorize_exact(modified=True)
            return
        # diag(H + B), cheap and exact: the diagonal preconditioner and the scaling of
        # the dense factor.
        self.diag = _hessian_diagonal(self.prob, sc)[self.live_idx] + self.barrier
        # Far from the boundary (the first iterations) the diagonal alone may precondition
        # well enough; the dense factor is built only once it does not.
        self.coupled = np.zeros(len(self.live_idx), dtype=bool)
        self.all_coupled = False
        self.pending = self.barrier <= self.decouple * (self.diag - self.barrier)

    def _factor_pending(self):
        coupled, self.pending = self.pending, None
        try:
            self._factorize(coupled, np.float32)
        except LinAlgError:
            # Round-off made a nearly singular matrix indefinite: a ridge keeps it a
            # fair preconditioner (CG works with the exact operator).
            self._factorize(coupled, np.float64, ridge=1e-6)

    def _factorize_exact(self, modified=False):
        """The float64 factor of ``D (H + B) D`` over all pairs, D = diag(H + B)^-1/2 read
        off the formed matrix (no separate pass for the diagonal)."""
        n = len(self.live_idx)
        hess = _reduced_hessian(self.prob, self.sc, self.live_idx)  # upper triangle
        diagonal = hess.reshape(-1)[::n + 1]  # a view of the diagonal
        self.diag = diagonal + self.barrier
        scale = _diagonal_scale(self.diag)
        # The lower triangle may hold any leftover values (never read): no warnings.
        with np.errstate(all="ignore"):
            hess *= scale[:, None]
            hess *= scale
        diagonal += self.barrier * scale ** 2
        self._set_factor(hess, modified)
        self.all_coupled, self.coupled = True, np.ones(n, dtype=bool)
        self.scale, self.dtype = scale, np.float64

    def _factorize(self, coupled, dtype, ridge=0.0, modified=False):
        rows = self.live_idx[coupled]
        barrier = self.barrier[coupled]
        # Diagonal scaling D = diag(H + B)^-1/2, from the cheap exact diagonal: it is
        # folded into the pair weights of the product, so D (H + B) D is formed directly.
        scale = _diagonal_scale(self.diag[coupled])
        if dtype == np.float32 and (self.buffer is None or self.buffer.size < len(rows) ** 2):
            # One workspace for every factor: a fresh 4 n^2-byte array per iteration
            # costs about as much in page faults as forming the matrix.  Sized for the
            # first factor's pairs (the coupled pairs only shrink towards the optimum).
            self.buffer = np.empty(len(rows) ** 2, dtype=np.float32)
        # Only the upper triangle is formed (and read by the factorisations).
        hess = _reduced_hessian(self.prob, self.sc, rows, dtype=dtype, buffer=self.buffer,
                                weights=scale)
        assert hess.flags.c_contiguous  # else reshape would copy, and updates be lost
        diagonal = hess.reshape(-1)[::len(rows) + 1]  # a view of the diagonal
        diagonal += (barrier * scale ** 2 + ridge).astype(dtype)
        self._set_factor(hess, modified)
        self.all_coupled = bool(coupled.all())
        self.coupled, self.scale, self.dtype = coupled, scale, dtype

    def _set_factor(self, hess, modified):
        """Cholesky factor of the (upper triangle of) ``hess``, or with ``modified`` its
        eigen-decomposition with eigenvalues clipped to be positive."""
        if modified:
            values, vectors = np.linalg.eigh(hess, UPLO="U")
            values = np.maximum(values, 1e-12 * values[-1])
            self.factor = None
            self.eigen = (vectors, 1.0 / values)
        else:
            self.factor = _cholesky(hess)

    def matvec(self, v):
        """``(H + diag(z / w)) v`` in float64, without forming H.

        ``H v = sum_y K_y A M_y^+ A^T K_y v``: the marginals of ``k v`` per class, then
        ``M_y^+``, then back onto the pairs.  Both passes over ``k`` are batched
        matrix-vector products over copies of ``k`` laid out teacher-major and
        student-major (made once per Newton system: CG applies it hundreds of times),
        which read ``k`` four times in all and allocate nothing of its size (measured at
        128 x 128 x 10: 0.26 ms against 1.9 ms for broadcast products and sums).
        """
        prob, sc = self.prob, self.sc
        n_t = prob.n_t
        if self.k_layouts is None:
            self.k_layouts = (np.ascontiguousarray(sc.k.transpose(1, 0, 2)),  # [t, y, s]
                              np.ascontiguousarray(sc.k.transpose(2, 0, 1)))  # [s, y, t]
        k_t, k_s = self.k_layouts
        full = np.zeros(n_t * prob.n_s)
        full[self.live_idx] = v
        full = full.reshape(n_t, prob.n_s)
        marg = np.concatenate([np.matmul(k_t, full[:, :, None])[:, :, 0].T,
                               np.matmul(k_s, full.T[:, :, None])[:, :, 0].T], axis=1)
        m = np.matmul(sc.hess_inv, marg[:, :, None])[:, :, 0]
        hv = np.matmul(m[:, :n_t].T[:, None, :], k_t)[:, 0, :]
        hv += np.matmul(m[:, n_t:].T[:, None, :], k_s)[:, 0, :].T
        return hv.ravel()[self.live_idx] + self.barrier * v

    def precondition(self, r):
        if self.all_coupled:
            return self._solve_coupled(r)
        x = r / self.diag  # decoupled pairs: their diagonal alone
        c = self.coupled
        if c.any():
            x[c] = self._solve_coupled(r[c])
        return x

    def _solve_coupled(self, r):
        rhs = (self.scale * r).astype(self.dtype)
        if self.factor is None:
            vectors, inv_values = self.eigen
            return self.scale * (vectors @ (inv_values * (vectors.T @ rhs)))
        return self.scale * _cholesky_solve(self.factor, rhs)

    def solve(self, rhs):
        """Solve to ``rtol`` (exactly, by the factor, for small systems)."""
        if self.exact:
            return self.precondition(rhs)
        if self.pending is not None and self.diagonal_suffices:
            x, converged = self._cg(rhs, max_iter=30, rtol=self.rtol)
            if converged:
                return x
            self.diagonal_suffices = False  # it will not again, closer to the boundary
        if self.pending is not None:
            if self._coupled_fit(int(self.pending.sum())):
                self._factor_pending()
            else:
                self.pending = None  # the diagonal must do
        if not self.coupled.any():  # too many coupled pairs for a factor
            return self._cg(rhs, max_iter=_CG_DIAGONAL, rtol=self.rtol)[0]
        return self._cg(rhs, max_iter=50 if self.all_coupled else _CG_COUPLED,
                        rtol=self.rtol)[0]

    def _coupled_fit(self, n_coupled: int) -> bool:
        """Whether a dense float32 factor of the ``n_coupled`` coupled pairs is worth
        it: within _DENSE_PAIRS, and cheaper to form and factor than the diagonally
        preconditioned CG it replaces (at most _CG_DIAGONAL steps for each of two
        systems).  Always, in practice, below a thousand pairs or so.

        Near the optimum most pairs head to zero mass and decouple: measured at 128 x
        128 x 10 and 200 x 200 x 20, from the 8th iteration on 1.2-7k of 16-40k pairs
        stayed coupled while diagonal CG ran at its cap of 1,000 steps (2,002 Hessian
        products an iteration).
        """
        if not 0 < n_coupled <= _DENSE_PAIRS:
            return False
        prob = self.prob
        d, cells = prob.n_t + prob.n_s, prob.n_y * prob.n_t * prob.n_s
        factor = (4.0 * prob.n_y * n_coupled ** 2 + n_coupled ** 3 / 3) / _FLOAT32_FLOPS
        products = 2 * _CG_DIAGONAL * (2.0 * prob.n_y * d * d + 10.0 * cells) / _PRODUCT_FLOPS
        return factor <= products

    def _cg(self, rhs, max_iter, rtol=1e-12):
        """Preconditioned conjugate gradients; the solution and whether it converged.

        Starts from the preconditioned right-hand side and checks the residual before
        each preconditioner application (with a large factor, each costs two passes over
        it: none is spent on a residual that is already small enough).
        """
        x = self.precondition(rhs)
        r = rhs - self.matvec(x)
        target = rtol * np.linalg.norm(rhs)
        d = rz = None
        for _ in range(max_iter):
            if np.linalg.norm(r) <= target:
                return x, True
            z = self.precondition(r)
            rz, rz_old = r @ z, rz
            d = z if d is None else z + (rz / rz_old) * d
            ad = self.matvec(d)
            step = rz / (d @ ad)
            x = x + step * d
            r = r - step * ad
        return x, bool(np.linalg.norm(r) <= target)


def _diagonal_scale(diag: np.ndarray) -> np.ndarray:
    """``diag^-1/2``; LinAlgError unless every entry is positive and finite."""
    if not np.all(np.isfinite(diag) & (diag > 0)):
        raise LinAlgError("the Newton matrix has a non-positive or non-finite diagonal")
    return 1.0 / np.sqrt(diag)


def _cholesky(hess: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of a symmetric C-ordered matrix, computed in place.

    hess is symmetric: its transpose is a Fortran-ordered view, which LAPACK factors in
    place (a C-ordered array would be copied first, doubling the cost).  LAPACK is called
    directly: at the sizes of small problems scipy's wrappers cost as much as the work.
    """
    potrf, = get_lapack_funcs(("potrf",), (hess,))
    factor, info = potrf(hess.T, lower=True, overwrite_a=True, clean=False)
    if info != 0:
        raise LinAlgError(f"the Newton matrix is not positive definite (potrf info {info})")
    return factor


def _cholesky_solve(factor: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    potrs, = get_lapack_funcs(("potrs",), (factor,))
    x, info = potrs(factor, rhs, lower=True)
    if info != 0:
        raise ValueError(f"potrs: illegal argument {-info}")
    return x


def _reduced_hessian(prob, sc, rows: np.ndarray, dtype=np.float64, buffer=None,
                     weights=None) -> np.ndarray:
    """The upper triangle of ``D H D``, H the Hessian of phi (sum_y K_y A M_y^+ A^T K_y)
    restricted to the pairs ``rows`` and D = diag(``weights``) (default: ones).

    Entry (j, i) with j = (u, v), i = (t, s) is
    ``sum_y k[y,j] k[y,i] (M[u,t] + M[u,s'] + M[v',t] + M[v',s'])`` (``M = M_y^+``,
    primes mark student indices).  The terms with ``M[u, .]`` are, for each teacher value
    u, one matrix product over y between the rows j = (u, .) and the columns to their
    right; likewise for ``M[v', .]`` and each student value v, whose rows are spread
    over the matrix: they are taken in bands of consecutive teacher values, each with
    the columns from the band's first row on.  ``rows`` must be sorted (teacher-major).
    Left of each band's first column the array holds whatever the buffer held: only the
    upper triangle may be read.
    """
    n_t, n_s, n_y = prob.n_t, prob.n_s, prob.n_y
    n = len(rows)
    small = max(n_t, n_s) * n_y * n_t * n_s <= _BROADCAST_LIMIT
    if n == n_t * n_s and small:
        return _full_hessian(prob, sc, dtype, weights)
    if small and n_t * n_s <= _WHOLE_PAIRS:
        # Small problems with dead pairs: the whole matrix in two batched products, then
        # the live rows and columns (measured at 10 x 10 x 10 with 50-80 live pairs:
        # 0.1 ms against 1-2 ms for the banded loops below, whose cost is the number of
        # numpy calls, not the arithmetic).
        full_weights = np.zeros(n_t * n_s)
        full_weights[rows] = 1.0 if weights is None else weights
        whole = _full_hessian(prob, sc, dtype, full_weights)
        return whole[np.ix_(rows, rows)]
    t_of, s_of = np.divmod(rows, n_s)
    k_rows = sc.k.reshape(n_y, -1)[:, rows]
    if weights is not None:
        k_rows = k_rows * weights
    k_rows = k_rows.astype(dtype, copy=False)
    hinv = np.ascontiguousarray(sc.hess_inv.transpose(1, 0, 2), dtype=dtype)  # [c, y, c']
    if buffer is not None and buffer.dtype == dtype and buffer.size >= n * n:
        hess = buffer[:n * n].reshape(n, n)
    else:
        hess = np.empty((n, n), dtype=dtype)
    everything = n == n_t * n_s
    s_cols = n_t + s_of

    def coupling(c, start):  # f[y, i] = k[y, i] * (M[c, t_i] + M[c, s_i']), i >= start
        m = hinv[c]
        if everything:  # i runs over the full grid from teacher t0: broadcast
            t0 = start // n_s
            f = (m[:, t0:n_t, None] + m[:, None, n_t:]).reshape(n_y, -1)
        else:  # take: a third faster than fancy indexing
            f = m.take(t_of[start:], axis=1)
            f += m.take(s_cols[start:], axis=1)
        f *= k_rows[:, start:]
        return f

    starts = np.searchsorted(t_of, np.arange(n_t + 1))  # rows of teacher u: starts[u]:
    width = -(-n_t // _ROW_BANDS)
    bands = [(starts[t0], starts[min(t0 + width, n_t)]) for t0 in range(0, n_t, width)]
    bands = [(first, stop) for first, stop in bands if first < stop]
    for first, stop in bands:
        for u in np.unique(t_of[first:stop]):
            block = slice(starts[u], starts[u + 1])
            np.matmul(k_rows[:, block].T, coupling(u, first), out=hess[block, first:])
    for v in range(n_s):
        f = coupling(n_t + v, 0)
        for first, stop in bands:
            if everything:  # the band's rows of student v are every n_s-th: a view
                rows_v = slice(first + v, stop, n_s)
            else:
                rows_v = first + np.flatnonzero(s_of[first:stop] == v)
                if not len(rows_v):
                    continue
            hess[rows_v, first:] += k_rows[:, rows_v].T @ f[:, first:]
    return hess


# Bands of teacher values for the student terms of _reduced_hessian: more bands skip
# more of the lower triangle (1/2 in the limit) at the cost of more, smaller products.
_ROW_BANDS = 8


def _full_hessian(prob, sc, dtype, weights=None) -> np.ndarray:
    """:func:`_reduced_hessian` over all pairs (the whole matrix): faster while it is small.

    ``f[c, y, (t, s)] = k[y, t, s] (M[c, t] + M[c, s'])`` for teacher columns c, then
    student ones, and one batched product per half.  The sums ``M[c, t] + M[c, s']`` are
    one product with the pair-value incidence matrix: BLAS wastes flops on its zeros but
    still beats the broadcast sum, whose short inner loops run at memory speed (measured:
    23 vs 32 us at 10 x 10 x 10, 0.24 vs 1.3 ms at 20 x 20 x 10).
    """
    n_t, n_s, n_y = prob.n_t, prob.n_s, prob.n_y
    d = n_t + n_s
    k = sc.k if weights is None else sc.k * weights.reshape(n_t, n_s)
    k = k.astype(dtype, copy=False)
    hinv = np.ascontiguousarray(sc.hess_inv.transpose(2, 0, 1), dtype=dtype)  # [c, y, c']
    f = (hinv.reshape(d * n_y, d) @ _incidence(n_t, n_s, dtype)).reshape(d, n_y, n_t * n_s)
    f *= k.reshape(n_y, -1)
    part_t = np.matmul(np.ascontiguousarray(k.transpose(1, 2, 0)), f[:n_t])  # [u, v, i]
    part_s = np.matmul(np.ascontiguousarray(k.transpose(2, 1, 0)), f[n_t:])  # [v, u, i]
    part_t += part_s.transpose(1, 0, 2)
    return part_t.reshape(n_t * n_s, -1)


@functools.lru_cache(maxsize=8)
def _incidence(n_t: int, n_s: int, dtype) -> np.ndarray:
    """``E[c, (t, s)] = [c == t] + [c == n_t + s]`` (read-only, cached per shape)."""
    pairs = np.arange(n_t * n_s)
    e = np.zeros((n_t + n_s, n_t * n_s), dtype=dtype)
    e[pairs // n_s, pairs] = 1
    e[n_t + pairs % n_s, pairs] = 1
    e.flags.writeable = False
    return e


def _hessian_diagonal(prob, sc) -> np.ndarray:
    """The diagonal of the Hessian of phi (cheap: no pair-pair products)."""
    n_t = prob.n_t
    hinv = sc.hess_inv
    tt = np.diagonal(hinv[:, :n_t, :n_t], axis1=1, axis2=2)
    ss = np.diagonal(hinv[:, n_t:, n_t:], axis1=1, axis2=2)
    ts = hinv[:, :n_t, n_t:]
    return (sc.k ** 2 * (tt[:, :, None] + ss[:, None, :] + 2 * ts)).sum(axis=0).ravel()
