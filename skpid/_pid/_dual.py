"""The BROJA problem solved from its dual side, for small tables and batches of them.

The dual of ``f* = min_{Q in Delta_P} -H_Q(Y | T, S)`` (``_broja.py``) is

    f* = max_theta  c . theta   subject to   G_ts(theta) = log sum_y exp(lam[y, t] + mu[y, s]) <= 0

for every (t, s) pair that can carry mass, with ``theta = (lam, mu)`` over the (value,
class) entries that carry mass and ``c`` their masses P(t, y), P(s, y): a geometric
program in log-sum-exp form.  Its Lagrange multipliers ``w[t, s] >= 0`` are Q's marginal on
(T, S), and ``q(t, s, y) = w[t, s] pi_ts(y)`` with ``pi_ts`` the softmax of
``lam[., t] + mu[., s]`` over the classes.

Here a primal-dual interior-point method (Mehrotra's predictor-corrector, slacks
``s = -G``, infeasible start) solves it directly: every iteration is one Newton system
over the entries of theta, formed from the cells in one ``bincount`` and solved by a
dense Cholesky factor, with no inner problem.  The primal method of ``_broja.py`` instead
eliminates theta exactly at every trial point (a per-class matrix scaling to machine
precision): robust on any table, but a few thousand small numpy calls per solve, which on
the small sparse plug-in tables of a gate, a bootstrap or a permutation test cost more
than the arithmetic.  This method needs about 60 numpy calls per iteration for all the
tables solved together (a batch is one problem with a block-diagonal structure, its
arrays flat over all tables), plus a few LAPACK calls per table for its factor.

Certificate: any theta gives the lower bound ``c . theta - max G`` (shifting lam by
``max G`` makes it feasible; ``_broja._dual_bound``).  Once the iterate is nearly optimal,
its weights ``w / K`` are scaled exactly onto P's marginals by Newton's method on theta
(the per-class scaling problem of ``_broja.py``, a few steps from there): a feasible Q and
an upper bound.  A table is returned only when the two are within the tolerance asked
for; otherwise (masses spanning many decades, strict complementarity failing badly) the
caller solves it with the primal method.
"""

from dataclasses import dataclass

import numpy as np
from scipy.linalg import get_lapack_funcs

# Tables handed to this method (see suits_dual): at most this many free entries of theta
# (the Newton matrix is mf x mf, factored densely at every iteration) and an estimated
# cost at most this share of the primal method's.
DUAL_MAX_ENTRIES = 500
DUAL_COST_RATIO = 0.7
# Masses spanning more decades than this (smallest over largest marginal entry) are left
# to the primal method: the central path reaches them only once the barrier parameter is
# below them, many iterations later (plug-in tables of n rows span at most log10(n)).
DUAL_MIN_RATIO = 1e-10
# Stacked Newton matrices of one batch: at most this many float64 entries (4 MB; larger
# batches gained nothing, their matrices no longer fit the caches).
BATCH_ENTRIES = 2 ** 19

# Ridge on the unit diagonal of the Jacobi-scaled Newton matrix.  Where the support of
# the optimal Q splits a class into several components, each component's shift becomes a
# (nearly) free direction at the end and the matrix is singular to round-off; the ridge
# keeps its factor finite and one step of iterative refinement restores the accuracy of
# the other directions.
_RIDGE = 1e-13
# Fraction to the boundary.
_TAU = 0.995
# Safeguard against the nonlinearity of G: a step after which a table's largest
# constraint residual |G + s| exceeds this factor times the former one (and 1) is halved
# (Newton's linearisation of log-sum-exp can overshoot by orders of magnitude where an
# entry's step is large: a sparse table's residual went from 0.03 to 6, then diverged;
# plain Mehrotra steps are kept otherwise).
_GROWTH = 10.0
# Iterations at most (a typical table needs 8-16; beyond, the primal method takes over
# with the iterations left), and without any progress.
_MAX_ITER = 40
_STUCK = 5
# While the gap stalls, the iterate is scaled exactly (for an upper bound) every few
# iterations once pairs * mu is below this.
_SCALE_BELOW = 1e-9
# Marginal error (absolute) to which the final scaling goes, and below which its Q counts
# as feasible (``_broja._FEASIBLE``).
_SCALING_TOL = 1e-15
_FEASIBLE = 1e-12


@dataclass
class DualResult:
    """What the dual method found for one table (full-shape ``q``)."""

    q: np.ndarray | None
    upper: float  # inf without a feasible Q
    lower: float
    marginal_error: float
    n_iter: int

    @property
    def gap(self) -> float:
        return self.upper - self.lower


def suits_dual(p_ty: np.ndarray, p_sy: np.ndarray) -> bool:
    """Whether a table with marginals ``P(t, y)``, ``P(s, y)`` (values x classes, only
    values and classes that carry mass) is for this method rather than the primal one.

    Its masses must be within ``DUAL_MIN_RATIO`` of each other, and its Newton matrix
    small and cheaper to factor than the primal method's work: ``mf^3 / 3`` flops plus
    ``200 (cells + couples)`` for the dual (``mf`` free entries of theta: the entries
    less one per class) against ``8 n_y d^3 + pairs^3 / 3 + 1e5`` for the primal (its
    per-class scalings, its Newton matrix over the pairs and its fixed overhead, ``d``
    values per class).  The ratio separates the two on measured single-table solve
    times (47 tables from 3 x 3 x 3 to 30 x 30 x 10 and up to 100 classes, dense and
    sampled): up to 0.7 the dual method was faster on all but the smallest (noise-level)
    tables, from 0.9 on slower on all.
    """
    on_t, on_s = p_ty > 0, p_sy > 0
    n_y = p_ty.shape[1]
    m = int(on_t.sum() + on_s.sum())
    if m - n_y > DUAL_MAX_ENTRIES:
        return False
    values = np.concatenate([p_ty[on_t], p_sy[on_s]])
    if values.min() < DUAL_MIN_RATIO * values.max():
        return False
    shared = on_t.astype(float) @ on_s.T.astype(float)  # classes of each (t, s) pair
    cells = float(shared.sum())
    couples = float((shared * (shared - 1)).sum()) / 2
    pairs = float(np.count_nonzero(shared))
    d = p_ty.shape[0] + p_sy.shape[0]
    dual = (m - n_y) ** 3 / 3 + 200 * (cells + couples)
    primal = 8 * n_y * d ** 3 + pairs ** 3 / 3 + 1e5
    return dual <= DUAL_COST_RATIO * primal


class _Batch:
    """Index structure of a batch of tables: theta entries padded to ``m`` per table,
    cells, pairs and couples as flat (ragged) arrays.

    Entry ``i`` of table ``b`` is ``b * m + i`` in the flat theta; the Newton matrices are
    ``(n_tables, m, m)``.  Per table, the teacher entries (t, y) come first in (t, y)
    order, then the student entries (s, y).  A cell is a (t, s, y) with P(t, y) > 0 and
    P(s, y) > 0; a pair a (t, s) with at least one cell.  Cells are sorted by table, then
    pair, so that each pair's cells and each table's pairs are contiguous.
    """

    def __init__(self, tables):
        self.shapes = [p.shape for p in tables]
        n = len(tables)
        dims = np.max(np.array(self.shapes), axis=0)
        n_t, n_s, n_y = (int(v) for v in dims)
        if all(p.shape == (n_t, n_s, n_y) for p in tables):
            full = np.asarray(tables, dtype=float)
        else:
            full = np.zeros((n, n_t, n_s, n_y))
            for b, p in enumerate(tables):
                full[b, :p.shape[0], :p.shape[1], :p.shape[2]] = p
        p_ty, p_sy = full.sum(axis=2), full.sum(axis=1)  # (B, T, Y), (B, S, Y)
        on_t, on_s = p_ty > 0, p_sy > 0
        m_t = on_t.reshape(n, -1).sum(axis=1)
        m_b = m_t + on_s.reshape(n, -1).sum(axis=1)
        self.n, self.m = n, int(m_b.max())
        m = self.m
        # Local entry numbers: running counts within each table.
        idx_t = np.cumsum(on_t.reshape(n, -1), axis=1).reshape(on_t.shape) - 1
        idx_s = (np.cumsum(on_s.reshape(n, -1), axis=1).reshape(on_s.shape) - 1
                 + m_t[:, None, None])
        self.c = np.zeros(n * m)
        b_t, t_t, y_t = np.nonzero(on_t)
        b_s, s_s, y_s = np.nonzero(on_s)
        self.c[b_t * m + idx_t[b_t, t_t, y_t]] = p_ty[b_t, t_t, y_t]
        self.c[b_s * m + idx_s[b_s, s_s, y_s]] = p_sy[b_s, s_s, y_s]
        teacher = b_t * m + idx_t[b_t, t_t, y_t]
        student = b_s * m + idx_s[b_s, s_s, y_s]
        self.is_teacher = np.zeros(n * m, dtype=bool)
        self.is_teacher[teacher] = True
        self.used = np.zeros(n * m, dtype=bool)
        self.used[teacher] = self.used[student] = True
        # Each entry's value (numbered over the batch, teachers first) and class.
        self.entry_value = np.zeros(n * m, dtype=np.int64)
        self.entry_value[teacher] = b_t * n_t + t_t
        self.entry_value[student] = n * n_t + b_s * n_s + s_s
        self.entry_class = np.zeros(n * m, dtype=np.int64)
        self.entry_class[teacher] = b_t * n_y + y_t
        self.entry_class[student] = b_s * n_y + y_s

        # Cells, in (table, t, s, y) order: sorted by pair.
        cb, ct, cs, cy = np.nonzero(on_t[:, :, None, :] & on_s[:, None, :, :])
        self.cells = (cb, ct, cs, cy)
        lt, ls = idx_t[cb, ct, cy], idx_s[cb, cs, cy]
        self.ty, self.sy = cb * m + lt, cb * m + ls
        self.tysy = np.concatenate([self.ty, self.sy])
        key = (cb * n_t + ct) * n_s + cs
        new_pair = np.empty(len(key), dtype=bool)
        new_pair[0] = True
        np.not_equal(key[1:], key[:-1], out=new_pair[1:])
        self.cell_pair = np.cumsum(new_pair) - 1
        pair_first = np.flatnonzero(new_pair)  # first cell of each pair
        self.pair_first_cell = pair_first
        self.n_pairs = len(pair_first)
        self.pair_table = cb[pair_first]
        self.pairs_of = np.bincount(self.pair_table, minlength=n)
        # Pairs of each table are contiguous: their first index, for reduceat.
        self.table_first_pair = np.concatenate([[0], np.cumsum(self.pairs_of)[:-1]])
        pair_len = np.diff(np.append(pair_first, len(key)))

        # Unordered couples (c, c') of cells of one pair, c < c'.
        after = pair_first[self.cell_pair] + pair_len[self.cell_pair] - 1 - np.arange(len(key))
        u1 = np.repeat(np.arange(len(key)), after)
        starts = np.cumsum(after) - after
        u2 = u1 + 1 + np.arange(len(u1)) - np.repeat(starts, after)
        self.u1, self.u2 = u1, u2
        self.couple_pair = self.cell_pair[u1]

        # One pinned entry per class: the shift lam + c, mu - c of a connected component
        # of a class's cells leaves every pi unchanged, so the Newton matrix is singular
        # along it (and the right-hand sides are orthogonal to it).  Each class has at
        # least one component, so pinning one entry of each (its last student entry)
        # removes a null direction and never a real one; the shifts of further
        # components are held by the ridge (_RIDGE).  Pinned entries and padding are left
        # out of the Newton matrices, which are over the "free" entries only:
        # ``(n_tables, mf, mf)``, ``mf`` the most free entries of a table (on tables with
        # many classes and few values per class, a third fewer rows than entries).
        last = np.full(n * n_y, -1)
        np.maximum.at(last, self.entry_class[student], student)
        free = self.used.copy()
        free[last[last >= 0]] = False
        free_count = free.reshape(n, m).sum(axis=1)
        self.mf = mf = max(int(free_count.max()), 1)
        rank = np.cumsum(free.reshape(n, m), axis=1).ravel() - 1
        slot = np.where(free, (np.arange(n * m) // m) * mf + rank, -1)
        self.free_count = free_count
        self.free_entries = np.flatnonzero(free)
        self.free_slots = slot[self.free_entries]

        # The matrix entries: cell terms at (t,t), (s,s), (t,s), (s,t); couple terms at
        # the 8 cross positions; entries in a pinned row or column are dropped.
        lt1, ls1, lt2, ls2 = lt[u1], ls[u1], lt[u2], ls[u2]
        rows = [lt, ls, lt, ls, lt1, lt2, lt1, ls2, ls1, lt2, ls1, ls2]
        cols = [lt, ls, ls, lt, lt2, lt1, ls2, lt1, lt2, ls1, ls2, ls1]
        n_c, n_u = len(key), len(u1)
        table = [cb] * 4 + [cb[u1]] * 8
        row_slot = np.concatenate([slot[b * m + r] for b, r in zip(table, rows)])
        col_slot = np.concatenate([slot[b * m + c] for b, c in zip(table, cols)])
        src = np.concatenate([np.arange(n_c)] * 4 + [n_c + np.arange(n_u)] * 8)
        keep = (row_slot >= 0) & (col_slot >= 0)
        dst = row_slot * mf + col_slot % mf
        self.dst, self.src = dst[keep], src[keep]
        # The cell terms alone (the scaling Hessian M of the final exact scaling).
        cell_entry = keep.copy()
        cell_entry[4 * n_c:] = False
        self.dst_cells, self.src_cells = dst[cell_entry], src[cell_entry]
        padding = np.arange(n * mf)[np.arange(n * mf) % mf >= np.repeat(free_count, mf)]
        self.padding_diag = padding * mf + padding % mf
        self.size = n * mf * mf
        self.entry_table = np.arange(n * m) // m

    # --- evaluations -----------------------------------------------------------------

    def evaluate(self, theta, w):
        """u = lam + mu per cell, K per pair, pi per cell, q per cell, marginals of q."""
        u = theta[self.ty] + theta[self.sy]
        e = np.exp(u)
        k = np.bincount(self.cell_pair, e, self.n_pairs)
        pi = e / k[self.cell_pair]
        q = w[self.cell_pair] * pi
        marg = np.bincount(self.tysy, np.concatenate([q, q]), len(theta))
        return u, k, pi, q, marg

    def per_table(self, pair_values):
        """Sum of a per-pair quantity over each table's pairs."""
        return np.add.reduceat(pair_values, self.table_first_pair)

    def entry_sum(self, entry_values):
        """Sum of a per-entry quantity over each table's entries (a sequential sum, whose
        round-off does not depend on the padding that follows a table's entries)."""
        return np.bincount(self.entry_table, entry_values, self.n)

    def table_min(self, pair_values):
        """Minimum of a per-pair quantity over each table's pairs."""
        return np.minimum.reduceat(pair_values, self.table_first_pair)

    def table_max(self, pair_values):
        """Maximum of a per-pair quantity over each table's pairs."""
        return np.maximum.reduceat(pair_values, self.table_first_pair)

    def grad_t(self, x, pi):
        """``sum_p x_p grad G_p`` (an entry vector) for a per-pair ``x``."""
        v = x[self.cell_pair] * pi
        return np.bincount(self.tysy, np.concatenate([v, v]), self.n * self.m)

    def grad(self, d, pi):
        """``grad G_p . d`` per pair for an entry vector ``d``."""
        return np.bincount(self.cell_pair, pi * (d[self.ty] + d[self.sy]), self.n_pairs)

    # --- Newton matrices ---------------------------------------------------------------

    def newton_matrix(self, w, s, pi):
        """``sum_p w_p hess G_p + (w_p / s_p) grad G_p grad G_p^T``, stacked (B, m, m).

        Each pair's Hessian is the covariance of the cells' incidence vectors under pi,
        written as ``sum_{c < c'} pi_c pi_c' (a_c - a_c')(a_c - a_c')^T``: a sum of
        positive semi-definite terms, so that it stays so in floating point (the form
        ``sum pi a a^T - g g^T`` cancels catastrophically where one class dominates a
        pair).  Regrouped: ``alpha_c a_c a_c^T`` per cell with ``alpha = (w/s) pi^2 +
        w pi (sum of the pair's other pi)``, and ``(w/s - w) pi_c pi_c'`` at the cross
        positions of each couple.
        """
        d = w / s
        p1, p2 = pi[self.u1], pi[self.u2]
        prod = p1 * p2
        others = (np.bincount(self.u1, p2, len(pi)) + np.bincount(self.u2, p1, len(pi)))
        cp = self.cell_pair
        alpha = d[cp] * pi * pi + w[cp] * pi * others
        beta = (d - w)[self.couple_pair] * prod
        return self._assemble(np.concatenate([alpha, beta])[self.src], self.dst)

    def scaling_matrix(self, q):
        """The per-class scaling Hessian ``sum_c q_c a_c a_c^T``, stacked (B, m, m)."""
        return self._assemble(q[self.src_cells], self.dst_cells)

    def _assemble(self, values, dst):
        flat = np.bincount(dst, values, self.size)
        flat[self.padding_diag] = 1.0
        return flat.reshape(self.n, self.mf, self.mf)


class _Factor:
    """Cholesky factors of the Jacobi-scaled, ridged Newton matrices of the tables
    ``rows`` of a batch (over its free entries); solves with one step of iterative
    refinement (which undoes the ridge's damping on all but nearly free directions).

    Each table is factored and solved on its own, at its own size (a loop of LAPACK
    calls, as fast as numpy's batched Cholesky at these sizes): the arithmetic of a table
    is then the same whatever batch it is part of, so that a batched solve gives the
    results of single solves bit for bit (and seeded estimates do not depend on how
    surrogates are split over workers).
    """

    def __init__(self, batch, mats, rows):
        self.batch, self.rows = batch, rows
        self.scaled, self.scale, self.factor = [], [], []
        self.ok = np.zeros(batch.n, dtype=bool)
        for b in rows:
            size = batch.free_count[b]
            a = mats[b, :size, :size]
            diag = a.diagonal()
            # A zero or non-finite diagonal (weights that under- or overflowed): no
            # step for that table (the caller stops it).
            if not ((diag > 0).all() and (diag < np.inf).all()):
                self._skip()
                continue
            scale = 1.0 / np.sqrt(diag)
            a = a * scale[:, None]
            a *= scale
            a.flat[::size + 1] += _RIDGE
            for extra in (0.0, 1e-10, 1e-7):
                try:
                    factor = _cholesky(a if extra == 0 else a + extra * np.eye(size))
                    break
                except np.linalg.LinAlgError:
                    continue
            else:
                self._skip()
                continue
            self.ok[b] = True
            self.scaled.append(a)
            self.scale.append(scale)
            self.factor.append(factor)

    def _skip(self):
        self.scaled.append(None)
        self.scale.append(None)
        self.factor.append(None)

    def solve(self, rhs):
        """Solve ``N x = rhs`` for a flat entry vector of the whole batch (pinned
        entries and tables outside ``rows`` get zero)."""
        batch = self.batch
        if batch.n == 1:  # one table: its free entries are its slots, in order
            out = np.zeros(len(rhs))
            if self.factor[0] is not None:
                a, scale, factor = self.scaled[0], self.scale[0], self.factor[0]
                r = rhs[batch.free_entries] * scale
                x = _potrs(factor, r, lower=False)[0]
                x += _potrs(factor, r - a @ x + _RIDGE * x, lower=False)[0]
                out[batch.free_entries] = x * scale
            return out
        r_all = np.zeros(batch.n * batch.mf)
        r_all[batch.free_slots] = rhs[batch.free_entries]
        r_all = r_all.reshape(batch.n, batch.mf)
        x_all = np.zeros_like(r_all)
        for b, a, scale, factor in zip(self.rows, self.scaled, self.scale, self.factor):
            if factor is None:
                continue
            size = len(scale)
            r = r_all[b, :size] * scale
            x = _potrs(factor, r, lower=False)[0]
            # Residual of the unridged matrix: (ridged - ridge I) x.
            x += _potrs(factor, r - a @ x + _RIDGE * x, lower=False)[0]
            x_all[b, :size] = x * scale
        out = np.zeros(len(rhs))
        out[batch.free_entries] = x_all.ravel()[batch.free_slots]
        return out


_potrf, _potrs = get_lapack_funcs(("potrf", "potrs"), (np.zeros((1, 1)),))


def _cholesky(a):
    """The upper Cholesky factor ``U`` (``a = U^T U``, Fortran-ordered, for ``_potrs``
    with ``lower=False``) of a symmetric C-ordered matrix; LinAlgError if it is not
    positive definite.  ``a.T`` is a Fortran-ordered view of the same matrix, which
    LAPACK reads without a copy."""
    upper, info = _potrf(a.T, lower=False, clean=True)
    if info != 0:
        raise np.linalg.LinAlgError("not positive definite")
    return upper


def solve_dual(tables, *, target=1e-12, tol=1e-8, max_iter=100, stall=6, progress=None):
    """Solve the BROJA problem of each table (pmfs ``p[t, s, y]`` without empty values or
    classes, each with more than one class and suited to this method, see
    :func:`suits_dual`) by the dual interior-point method, all together.

    Iterates until the certified gap is below ``target`` or, once below ``tol``, has not
    halved in ``stall`` iterations (at most ``max_iter``).  Returns one
    :class:`DualResult` per table; a table whose gap is not below ``tol`` (or that has no
    upper bound) is for the primal method.  ``progress(it, upper, lower)`` is called after
    each iteration of a single table (``_broja._Progress``).
    """
    results = [None] * len(tables)
    # Batches of tables with similar m, each within BATCH_ENTRIES.
    sizes = [int((p.sum(axis=1) > 0).sum() + (p.sum(axis=0) > 0).sum()) for p in tables]
    order = np.argsort(sizes, kind="stable")
    start = 0
    while start < len(order):
        m = sizes[order[start]]
        stop = start + 1
        while (stop < len(order) and sizes[order[stop]] <= 2 * max(m, 8)
               and (stop - start + 1) * sizes[order[stop]] ** 2 <= BATCH_ENTRIES):
            stop += 1
        chunk = order[start:stop]
        for i, res in zip(chunk, _solve_batch([tables[i] for i in chunk], target, tol,
                                              max_iter, stall, progress)):
            results[i] = res
        start = stop
    return results


def _start(batch):
    """A start with exact marginals: theta from the closed-form scaling of the rank-one
    weights ``w[t, s] = sqrt(P(t) P(s))`` (see ``_broja._rank_one_start``), whose Q is
    ``P(t, y) P(s, y) / P(y)``; per table, lam shifted so that every G <= -1; the
    multipliers ``w K`` (Q's marginal on the pairs); slacks ``s = -G``."""
    n, m = batch.n, batch.m
    c, used = batch.c, batch.used
    value_mass = np.bincount(batch.entry_value[used], c[used])
    teacher = batch.is_teacher
    class_mass = np.bincount(batch.entry_class[teacher], c[teacher])
    root = np.sqrt(value_mass)
    theta = np.zeros(n * m)
    theta[used] = (np.log(c[used]) - 0.5 * np.log(class_mass[batch.entry_class[used]])
                   - np.log(root[batch.entry_value[used]]))
    first = batch.pair_first_cell
    w = root[batch.entry_value[batch.ty[first]]] * root[batch.entry_value[batch.sy[first]]]
    _, k, _, _, _ = batch.evaluate(theta, w)
    g = np.log(k)
    shift = batch.table_max(g) + 1.0
    theta -= np.where(teacher, shift[np.arange(n * m) // m], 0.0)
    return theta, w * k, shift[batch.pair_table] - g


def _solve_batch(tables, target, tol, max_iter, stall, progress=None):
    batch = _Batch(tables)
    n = batch.n
    c = batch.c
    theta, w, s = _start(batch)
    _, k, pi, _, marg = batch.evaluate(theta, w)
    g = np.log(k)
    pairs = batch.pairs_of.astype(float)
    pt, et = batch.pair_table, batch.entry_table
    lower = np.full(n, -np.inf)
    upper = np.full(n, np.inf)
    best = [None] * n  # (q, marginal error) of the best upper bound
    done = np.zeros(n, dtype=bool)
    n_iter = np.zeros(n, dtype=int)
    last_progress = np.zeros(n, dtype=int)
    best_gap = np.full(n, np.inf)
    scaled_at = np.zeros(n, dtype=int)  # iteration of the last exact scaling
    last_move = np.zeros(n, dtype=int)
    best_nmu, best_lower = np.full(n, np.inf), np.full(n, -np.inf)
    max_iter = min(max_iter, _MAX_ITER)
    it = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while it < max_iter:
            it += 1
            n_iter[~done] = it
            dual = batch.entry_sum(c * theta) - batch.table_max(g)
            lower = np.where(~done & (dual > lower), dual, lower)
            nmu = batch.per_table(w * s)
            # An upper bound (an exact scaling) where it is likely to close the gap (it
            # comes out at about 100 pairs * mu), now and then while the gap stalls, and
            # before giving up.
            want = ~done & ((100 * nmu <= target) | (it >= max_iter) | ~(nmu >= 1e-18)
                            | ((nmu < _SCALE_BELOW) & (it - scaled_at >= 4)))
            if want.any():
                scaled_at[want] = it
                _certify(batch, theta, w / k, want, upper, lower, best)
            gap = upper - lower
            if progress is not None:
                progress(it, float(upper[0]), float(lower[0]))
            last_progress[gap < 0.5 * best_gap] = it
            best_gap = np.minimum(best_gap, gap)
            stalled = (it - last_progress >= stall) & (gap <= tol)
            # No progress at all (the barrier term and the bounds stuck for several
            # iterations): the primal method takes over.
            moving = (nmu < 0.5 * best_nmu) | (lower > best_lower + 1e-12 * np.abs(lower))
            last_move[moving] = it
            best_nmu, best_lower = np.minimum(best_nmu, nmu), np.maximum(best_lower, lower)
            stuck = it - last_move >= _STUCK
            done |= (gap <= target) | stalled | stuck | ~(nmu >= 1e-18)
            if done.all() or it >= max_iter:
                break
            r_d = marg - c
            r_p = g + s
            factor = _Factor(batch, batch.newton_matrix(w, s, pi), np.flatnonzero(~done))
            done |= ~factor.ok & ~done
            system = (batch, factor, w, s, pi, r_d, r_p)
            d_theta, d_w, d_s = _direction(system, w * s)
            a_aff = np.minimum(_max_step(batch, s, d_s, w, d_w), 1.0)[pt]
            mu_aff = batch.per_table((w + a_aff * d_w) * (s + a_aff * d_s)) / pairs
            centre = (np.clip(mu_aff * pairs / nmu, 0.0, 1.0) ** 3 * nmu / pairs)[pt]
            d_theta, d_w, d_s = _direction(system, w * s + d_w * d_s - centre)
            alpha = np.minimum(1.0, _TAU * _max_step(batch, s, d_s, w, d_w))
            alpha[done] = 0.0
            # Safeguard: halve a table's step while its constraint residual G + s blows
            # up (see _GROWTH); the evaluation at the accepted point is the next one.
            limit = np.maximum(_GROWTH * batch.table_max(np.abs(r_p)), 1.0)
            for _ in range(30):
                a_p = alpha[pt]
                theta_n, w_n, s_n = theta + alpha[et] * d_theta, w + a_p * d_w, s + a_p * d_s
                _, k, pi, _, marg = batch.evaluate(theta_n, w_n)
                g_n = np.log(k)
                bad = ~(batch.table_max(np.abs(g_n + s_n)) <= limit) & (alpha > 0)
                if not bad.any():
                    break
                alpha[bad] *= 0.5
            else:
                done |= bad
            theta, w, s, g = theta_n, w_n, s_n, g_n
    results = []
    for b in range(n):
        q_b, error = best[b] if best[b] is not None else (None, np.inf)
        results.append(DualResult(q=q_b, upper=float(upper[b]), lower=float(lower[b]),
                                  marginal_error=float(error), n_iter=int(n_iter[b])))
    return results


def _direction(system, r_c):
    """The Newton direction (d_theta, d_w, d_s) for the complementarity residual
    ``r_c = w s - target``: ``(H + grad^T (w/s) grad) d_theta = -r_d - grad^T((w/s) r_p -
    r_c/s)``, then d_s and d_w from the linearised slack and complementarity rows."""
    batch, factor, w, s, pi, r_d, r_p = system
    ratio, r_c = w / s, r_c / s
    d_theta = factor.solve(batch.grad_t(r_c - ratio * r_p, pi) - r_d)
    d_s = -r_p - batch.grad(d_theta, pi)
    return d_theta, -ratio * d_s - r_c, d_s


def _max_step(batch, s, d_s, w, d_w):
    """Per table, the largest a with s + a d_s >= 0 and w + a d_w >= 0 (s, w > 0)."""
    with np.errstate(divide="ignore"):
        ratio = np.minimum(np.where(d_s < 0, -s / d_s, np.inf),
                           np.where(d_w < 0, -w / d_w, np.inf))
    return batch.table_min(ratio)


def _certify(batch, theta, weights, which, upper, lower, best, max_steps=8):
    """Scale the weights ``weights`` (per pair) of the tables ``which`` exactly onto P's
    marginals by Newton's method on theta, from ``theta``; where the scaling reaches
    ``_FEASIBLE``, its Q's value improves ``upper`` (and its theta's dual value
    ``lower``), and ``best`` keeps that Q."""
    n, m = batch.n, batch.m
    c = batch.c
    active = np.repeat(which, m)
    wc = weights[batch.cell_pair]
    theta = theta.copy()
    error = np.full(n, np.inf)
    for _ in range(max_steps):
        u = theta[batch.ty] + theta[batch.sy]
        q = wc * np.exp(u)
        marg = np.bincount(batch.tysy, np.concatenate([q, q]), n * m)
        r = np.where(active, marg - c, 0.0)
        new_error = np.abs(r).reshape(n, m).max(axis=1)
        # Stop a table once it is scaled, or stops converging (round-off floor).
        stop = (new_error <= _SCALING_TOL) | ~(new_error < 0.5 * error)
        error = np.where(which, new_error, error)
        if np.all(stop | ~which):
            break
        r[np.repeat(stop, m)] = 0.0
        factor = _Factor(batch, batch.scaling_matrix(q), np.flatnonzero(which & ~stop))
        theta -= factor.solve(r)
    k = np.bincount(batch.cell_pair, np.exp(u), batch.n_pairs)
    value = np.bincount(batch.pair_table[batch.cell_pair], q * (u - np.log(k)[batch.cell_pair]),
                        n)
    dual = batch.entry_sum(c * theta) - batch.table_max(np.log(k))
    cb, ct, cs, cy = batch.cells
    for b in np.flatnonzero(which & (error <= _FEASIBLE) & (value < upper)):
        upper[b] = value[b]
        q_b = np.zeros(batch.shapes[b])
        on = cb == b
        q_b[ct[on], cs[on], cy[on]] = q[on]
        best[b] = (q_b, error[b])
    lower[which & np.isfinite(dual)] = np.maximum(lower, dual)[which & np.isfinite(dual)]
