"""The dual interior-point method, batched solves, the primal method's warm-start guard
and iteration counts (issue 23)."""

import warnings

import numpy as np
import pytest

from skpid import pid_from_counts, pid_from_pmf
from skpid._pid import _broja, _dual
from skpid._pid._core import pid_from_counts_many
from tests.conftest import ATOM_KEYS, atoms_of, load_reference_cases

CASES = load_reference_cases()


def sampled(shape, rows, seed):
    """Counts of ``rows`` samples of a random pmf: a sparse plug-in table."""
    rng = np.random.default_rng([seed, rows, *shape])
    return rng.multinomial(rows, rng.dirichlet(np.ones(np.prod(shape)))).reshape(shape)


def reduced(counts):
    """The pmf of a count table without its empty values and classes (what the solver
    works on)."""
    p = counts / counts.sum()
    p = p[p.sum(axis=(1, 2)) > 0][:, p.sum(axis=(0, 2)) > 0]
    return p[:, :, p.sum(axis=(0, 1)) > 0]


def dead_pairs(p):
    """(t, s) pairs that no class lets carry mass (no y with P(t, y), P(s, y) > 0)."""
    live = (p.sum(axis=1) > 0).astype(float) @ (p.sum(axis=0) > 0).T.astype(float)
    return int(np.count_nonzero(live == 0))


@pytest.mark.parametrize("method", ["primal", "dual"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_both_methods_match_the_certified_references(case, method, monkeypatch):
    monkeypatch.setattr(_broja, "_METHOD", method)
    result = pid_from_pmf(np.array(case["pmf"]))
    for attr, key in ATOM_KEYS.items():
        assert getattr(result, attr) == pytest.approx(case["atoms_bits"][key], abs=1e-7)
    assert result.converged and result.gap < 1e-10


def test_the_dual_method_certifies_sparse_tables_with_dead_pairs():
    # Plug-in tables of few rows: most (t, s) pairs can carry no mass.  The dual method
    # must certify them by itself (no fallback) and agree with the primal method.
    for seed in range(6):
        for shape, rows in (((10, 10, 10), 40), ((10, 10, 100), 150), ((6, 8, 4), 25)):
            p = reduced(sampled(shape, rows, seed))
            prob = _broja._Problem(p)
            if prob.n_y <= 1 or prob.p_is_optimal():
                continue
            assert dead_pairs(p) > 0
            dual = _dual.solve_dual([p])[0]
            assert dual.q is not None and dual.gap <= 1e-10
            assert dual.marginal_error <= 1e-12
            np.testing.assert_allclose(dual.q.sum(axis=1), p.sum(axis=1), atol=1e-12)
            np.testing.assert_allclose(dual.q.sum(axis=0), p.sum(axis=0), atol=1e-12)
            outside = (p.sum(axis=1)[:, None, :] == 0) | (p.sum(axis=0)[None, :, :] == 0)
            assert np.all(dual.q >= 0) and np.all(dual.q[outside] == 0)
            primal = _broja._interior_point(prob, 1e-8, 1e-12, 100, 6)
            assert abs(dual.upper - primal.objective) <= dual.gap + primal.gap + 1e-12
            assert dual.lower <= primal.objective + 1e-12
            assert primal.lower_bound <= dual.upper + 1e-12


def test_sparse_tables_agree_with_dit_cone():
    pytest.importorskip("ecos")
    from skpid._testing import dit_broja_atoms

    with_dead_pairs = 0
    for seed in range(4):
        counts = sampled((4, 4, 3), 14, seed).astype(float)
        p = counts / counts.sum()
        with_dead_pairs += dead_pairs(reduced(counts)) > 0
        ours = pid_from_pmf(p)
        for attr, value in dit_broja_atoms(p).items():
            assert getattr(ours, attr) == pytest.approx(value, abs=1e-6)
    assert with_dead_pairs


def test_a_batched_solve_gives_each_table_the_bits_of_a_single_solve():
    # Each table is factored and solved at its own size, and per-table sums run in a
    # fixed order: a table's result does not depend on the batch it is part of.
    tables = [reduced(sampled((10, 10, 10), rows, seed)) for seed in range(5)
              for rows in (30, 80, 200)] + [reduced(sampled((5, 7, 3), 20, 9))]
    together = _dual.solve_dual(tables)
    for p, batched in zip(tables, together):
        alone = _dual.solve_dual([p])[0]
        assert batched.upper == alone.upper and batched.lower == alone.lower
        assert batched.n_iter == alone.n_iter
        np.testing.assert_array_equal(batched.q, alone.q)
    reversed_order = _dual.solve_dual(tables[::-1])[::-1]
    assert [r.upper for r in reversed_order] == [r.upper for r in together]


def test_pid_from_counts_many_matches_pid_from_counts():
    rng = np.random.default_rng(3)
    tables = ([sampled((10, 10, 10), 60, seed) for seed in range(4)]
              + [rng.integers(0, 9, size=(6, 5, 4)),  # dense: the primal method
                 np.eye(3)[:, :, None] * [1, 2],      # T = S: P is optimal
                 rng.integers(1, 5, size=(3, 3, 1))])  # one class
    many = pid_from_counts_many(tables, base=np.e)
    for counts, result in zip(tables, many):
        # The same solves, whether batched or not: the same bits.
        single = pid_from_counts(counts, base=np.e)
        np.testing.assert_array_equal(atoms_of(result), atoms_of(single))
        assert result.gap == single.gap and result.n_iter == single.n_iter
        assert result.converged
    with pytest.raises(ValueError, match=r"tables\[1\] must be non-negative"):
        pid_from_counts_many([tables[0], -np.ones((2, 2, 2))])
    mmi = pid_from_counts_many(tables[:2], measure="mmi")
    assert mmi[0].redundancy == pid_from_counts(tables[0], measure="mmi").redundancy


def test_a_failed_dual_solve_falls_back_to_the_primal_method(monkeypatch):
    # A dual solve that ends short of tol (here: one iteration) leaves the table to the
    # primal method, which gets the iterations left; the best bounds of both are kept.
    p = reduced(sampled((10, 10, 10), 60, 1))
    monkeypatch.setattr(_dual, "_MAX_ITER", 1)
    monkeypatch.setattr(_broja, "_METHOD", "dual")
    sol = _broja.solve_broja(p)
    monkeypatch.undo()
    exact = _broja.solve_broja(p)
    assert sol.converged and sol.n_iter > 1
    assert abs(sol.objective - exact.objective) <= sol.gap + exact.gap + 1e-12


def test_suits_dual_prefers_the_primal_method_where_pairs_are_few():
    # Many classes per pair (dense tables, few values): the dual's Newton matrix over the
    # (value, class) entries is far larger than the primal's over the pairs.
    dense = np.random.default_rng(0).dirichlet(np.ones(5 * 5 * 50)).reshape(5, 5, 50)
    assert not _dual.suits_dual(dense.sum(axis=1), dense.sum(axis=0))
    sparse = reduced(sampled((10, 10, 10), 60, 0))
    assert _dual.suits_dual(sparse.sum(axis=1), sparse.sum(axis=0))
    # A value of mass 1e-14, beyond DUAL_MIN_RATIO of the others: the primal method.
    _, s, y = np.argwhere(sparse > 0)[0]
    skewed = np.concatenate([sparse, np.zeros((1,) + sparse.shape[1:])])
    skewed[-1, s, y] = 1e-14
    assert not _dual.suits_dual(skewed.sum(axis=1), skewed.sum(axis=0))


def test_n_iter_is_reported():
    p = np.random.default_rng(8).dirichlet(np.ones(4 * 3 * 3)).reshape(4, 3, 3)
    result, sol = pid_from_pmf(p), _broja.solve_broja(p)
    assert result.n_iter == sol.n_iter > 0
    assert "n_iter" in result.as_dict()
    with pytest.warns(Warning, match="stopped after 1 iterations"):
        assert pid_from_pmf(p, max_iter=1).n_iter == 1
    t_equals_s = np.zeros((3, 3, 2))
    t_equals_s[np.arange(3), np.arange(3)] = [[0.2, 0.1], [0.1, 0.3], [0.2, 0.1]]
    assert pid_from_pmf(t_equals_s).n_iter == 0  # P is optimal: nothing to iterate
    assert pid_from_pmf(p, measure="mmi").n_iter == 0


def test_the_warm_start_guard_replaces_wild_classes_only():
    # A trial start whose marginals overflow in one class (as first-order predictions
    # did on tables sampled from 150 rows with 100 classes: errors up to 1e208) is
    # replaced by the current point in that class only.
    p = reduced(sampled((6, 6, 5), 400, 2))
    prob = _broja._Problem(p)
    w, theta = _broja._rank_one_start(prob, prob.live.ravel())
    wm = prob.mask * w.reshape(prob.n_t, prob.n_s)
    wild = theta.copy()
    wild[2, :prob.n_t] += 800.0  # exp overflows: marginals of class 2 are inf
    wild[3] += 1e-3 * prob.active[3]  # a slightly worse, but sane, prediction
    with np.errstate(over="ignore", invalid="ignore"):
        start, _, _, residual, objective = _broja._guarded_start(prob, wm, wild, theta)
    assert np.isfinite(residual).all() and np.isfinite(objective).all()
    np.testing.assert_array_equal(start[2], _broja._balanced(prob, theta)[2])
    np.testing.assert_array_equal(start[3], wild[3])  # sane: the prediction is kept
    assert np.abs(residual).max() < 1e-12 + np.abs(residual[3]).max()


def test_a_table_whose_predictions_overflowed_solves_with_finite_starts(monkeypatch):
    # A table sampled from 150 rows with 100 classes on which one of the primal
    # method's line-search predictions is wild in a class (before the guard, such
    # classes overflowed and held every class at the scaling's 100-step cap).
    p = reduced(sampled((10, 10, 100), 150, 5))
    monkeypatch.setattr(_broja, "_METHOD", "primal")
    starts, replaced, guard = [], [], _broja._guarded_start

    def recording(prob, wm, theta, fallback):
        with np.errstate(over="ignore", invalid="ignore"):
            error = np.abs(_broja._scaling_terms(prob, wm, theta)[2]) / prob.diagonal_shift
        replaced.append(int((~(error.max(axis=1) <= _broja._WILD)).sum()))
        out = guard(prob, wm, theta, fallback)
        starts.append(out[3])
        return out

    monkeypatch.setattr(_broja, "_guarded_start", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = _broja.solve_broja(p)
    assert sol.converged and sol.gap <= 1e-8
    assert sum(replaced) >= 1  # the guard did act
    assert all(np.isfinite(r).all() for r in starts)
