"""Exactness of the BROJA solver: certified references, dit, degenerate inputs."""

import dataclasses
import warnings

import numpy as np
import pytest

from skpid import pid, pid_from_counts, pid_from_pmf
from skpid._pid import _broja, _newton
from skpid.datasets import GATES, gate_pmf
from skpid.exceptions import ConvergenceWarning
from tests.conftest import ATOM_KEYS, REFERENCE, atoms_of, load_reference_cases

CASES = load_reference_cases()


def test_reference_file_is_present():
    # The certified values are the primary reference: their absence must fail loudly.
    assert REFERENCE.exists(), f"missing {REFERENCE}"
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_certified_reference(case):
    result = pid_from_pmf(np.array(case["pmf"]))
    for attr, key in ATOM_KEYS.items():
        assert getattr(result, attr) == pytest.approx(case["atoms_bits"][key], abs=1e-7)
    assert result.converged
    assert result.gap < 1e-10


def check_identities(r, tol=1e-9):
    assert r.mi_teacher == pytest.approx(r.redundancy + r.unique_teacher, abs=tol)
    assert r.mi_student == pytest.approx(r.redundancy + r.unique_student, abs=tol)
    assert r.mi_joint == pytest.approx(atoms_of(r).sum(), abs=tol)
    assert np.all(atoms_of(r) >= 0)


@pytest.mark.parametrize("seed,shape", [(0, (2, 2, 2)), (1, (2, 3, 2)), (2, (3, 3, 3)),
                                        (3, (3, 2, 4)), (4, (4, 4, 2))])
def test_agrees_with_dit_cone(seed, shape):
    pytest.importorskip("ecos")
    from skpid._testing import dit_broja_atoms

    p = np.random.default_rng(seed).dirichlet(np.ones(np.prod(shape))).reshape(shape)
    ours = pid_from_pmf(p)
    theirs = dit_broja_atoms(p)
    for attr, value in theirs.items():
        assert getattr(ours, attr) == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("name", GATES)
def test_gates_closed_forms(name):
    expected = {
        "XOR": (0, 0, 0, 1), "AND": (0.311278124459, 0, 0, 0.5),
        "OR": (0.311278124459, 0, 0, 0.5), "COPY": (0, 1, 1, 0), "RDN": (1, 0, 0, 0),
        "UNQ_T": (0, 1, 0, 0), "UNQ_S": (0, 0, 1, 0),
    }[name]
    np.testing.assert_allclose(atoms_of(pid_from_pmf(gate_pmf(name))), expected, atol=1e-9)


def test_solver_certificate_brackets_the_optimum(rng):
    p = rng.dirichlet(np.ones(6 * 5 * 4)).reshape(6, 5, 4)
    sol = _broja.solve_broja(p)
    assert sol.converged and sol.lower_bound <= sol.objective + 1e-15
    assert sol.gap <= 1e-13
    np.testing.assert_allclose(sol.q.sum(axis=1), p.sum(axis=1), atol=1e-14)
    np.testing.assert_allclose(sol.q.sum(axis=0), p.sum(axis=0), atol=1e-14)
    assert np.all(sol.q >= 0)


def test_result_exposes_optimal_q_read_only(rng):
    p = rng.dirichlet(np.ones(27)).reshape(3, 3, 3)
    r = pid_from_pmf(p)
    assert r.q.shape == p.shape
    with pytest.raises(ValueError):
        r.q[0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        r.redundancy = 0.0


def test_not_converging_warns(rng):
    p = rng.dirichlet(np.ones(5 * 5 * 5)).reshape(5, 5, 5)
    with pytest.warns(ConvergenceWarning, match="gap"):
        r = pid_from_pmf(p, max_iter=2)
    assert not r.converged


def test_large_negative_atom_is_reported_not_hidden(monkeypatch, rng):
    p = rng.dirichlet(np.ones(8)).reshape(2, 2, 2)
    true = _broja.solve_broja(p)
    # An objective 1 nat too high makes redundancy clearly negative (I(Y;T) <= ln 2).
    broken = _broja.BrojaSolution(true.q, true.objective + 1.0, true.lower_bound, 1.0,
                                  0.0, True, 1)
    monkeypatch.setattr("skpid._pid._core.solve_broja", lambda *a, **k: broken)
    with pytest.warns(ConvergenceWarning, match="negative"):
        r = pid_from_pmf(p)
    assert min(r.redundancy, r.synergy) < -1e-6


def test_base_changes_units(rng):
    p = rng.dirichlet(np.ones(12)).reshape(2, 3, 2)
    bits, nats = pid_from_pmf(p), pid_from_pmf(p, base=np.e)
    np.testing.assert_allclose(atoms_of(nats), atoms_of(bits) * np.log(2), atol=1e-12)


# Degenerate inputs -------------------------------------------------------------------

def _dirichlet(rng, shape):
    return rng.dirichlet(np.ones(np.prod(shape))).reshape(shape)


def test_zero_rows_columns_and_slices(rng):
    p = _dirichlet(rng, (3, 3, 3))
    padded = np.zeros((5, 4, 5))
    padded[np.ix_([0, 2, 4], [1, 2, 3], [0, 1, 3])] = p
    np.testing.assert_allclose(atoms_of(pid_from_pmf(padded)), atoms_of(pid_from_pmf(p)),
                               atol=1e-10)


def test_deterministic_y(rng):
    p = np.zeros((3, 4, 2))
    p[:, :, 1] = _dirichlet(rng, (3, 4, 1))[:, :, 0]
    r = pid_from_pmf(p)
    assert r.entropy_y == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(atoms_of(r), 0, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1])
def test_single_value_of_t_or_s(rng, axis):
    shape = [3, 3, 3]
    shape[axis] = 1
    r = pid_from_pmf(_dirichlet(rng, tuple(shape)))
    check_identities(r)
    assert (r.mi_teacher if axis == 0 else r.mi_student) == pytest.approx(0, abs=1e-12)
    assert r.redundancy == pytest.approx(0, abs=1e-12)
    assert r.synergy == pytest.approx(0, abs=1e-12)


def test_y_independent_of_both(rng):
    p = _dirichlet(rng, (4, 3, 1)) * _dirichlet(rng, (1, 1, 5))
    p /= p.sum()
    np.testing.assert_allclose(atoms_of(pid_from_pmf(p)), 0, atol=1e-10)


def test_t_equals_s(rng):
    p_ty = _dirichlet(rng, (4, 3))
    p = np.zeros((4, 4, 3))
    p[np.arange(4), np.arange(4)] = p_ty
    r = pid_from_pmf(p)
    assert r.unique_teacher == pytest.approx(0, abs=1e-9)
    assert r.unique_student == pytest.approx(0, abs=1e-9)
    assert r.redundancy == pytest.approx(r.mi_teacher, abs=1e-9)
    assert r.synergy == pytest.approx(0, abs=1e-9)


def test_t_equals_y(rng):
    p_sy = _dirichlet(rng, (3, 4))
    p = np.zeros((4, 3, 4))
    p[np.arange(4), :, np.arange(4)] = p_sy.T
    r = pid_from_pmf(p)
    check_identities(r)
    assert r.mi_teacher == pytest.approx(r.entropy_y, abs=1e-12)
    assert r.unique_teacher == pytest.approx(r.entropy_y - r.mi_student, abs=1e-9)
    assert r.synergy == pytest.approx(0, abs=1e-9)


# Counts and labels --------------------------------------------------------------------

def test_counts_are_normalised(rng):
    p = _dirichlet(rng, (3, 2, 3))
    np.testing.assert_allclose(atoms_of(pid_from_counts(p * 1234.5)),
                               atoms_of(pid_from_pmf(p)), atol=1e-12)


def test_labels_of_any_hashable_type(rng):
    n = 400
    y = rng.integers(0, 3, n)
    t = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, n))
    s = rng.integers(0, 2, n)
    base = pid(t, s, y)
    names = np.array(["cat", "dog", "eel"])
    relabelled = pid(names[t], [("x", v) for v in s.tolist()], (y + 10).tolist())
    np.testing.assert_allclose(atoms_of(relabelled), atoms_of(base), atol=1e-10)
    counts = np.zeros((3, 2, 3))
    np.add.at(counts, (t, s, y), 1)
    np.testing.assert_allclose(atoms_of(pid_from_counts(counts)), atoms_of(base), atol=1e-12)


def test_unorderable_labels():
    objs = [object(), object()]
    t = [objs[0], objs[1], objs[0], objs[1]]
    r = pid(t, [0, 0, 1, 1], [0, 1, 0, 1])
    assert r.unique_teacher == pytest.approx(1.0, abs=1e-12)


def test_mmi_closed_form(rng):
    p = _dirichlet(rng, (3, 3, 2))
    r = pid_from_pmf(p, measure="mmi")
    assert r.redundancy == pytest.approx(min(r.mi_teacher, r.mi_student))
    check_identities(r)
    assert r.q is None


def test_repr_and_as_dict(rng):
    r = pid_from_pmf(_dirichlet(rng, (2, 2, 2)))
    text = repr(r)
    assert "redundancy=" in text and "bits" in text
    d = r.as_dict()
    assert set(d) >= {"redundancy", "unique_teacher", "unique_student", "synergy",
                      "mi_teacher", "mi_student", "mi_joint", "entropy_y", "base"}
    assert "q" not in d
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pid_from_pmf(_dirichlet(rng, (2, 2, 2)))


def test_repr_prints_round_off_as_zero():
    # XOR's redundancy and OR's unique informations come out of the solver as ~1e-16:
    # the repr prints them as 0, the fields keep the computed values
    xor, or_ = pid_from_pmf(gate_pmf("XOR")), pid_from_pmf(gate_pmf("OR"))
    assert "redundancy=0," in repr(xor) and "synergy=1," in repr(xor)
    assert "unique_teacher=0, unique_student=0," in repr(or_)
    assert "e-1" not in repr(xor) + repr(or_)
    # an atom above the certified gap is printed as is
    r = pid_from_pmf(gate_pmf("AND"))
    assert "redundancy=0.311278" in repr(r)
    replaced = dataclasses.replace(r, unique_teacher=3e-16, synergy=2e-9, gap=1e-9)
    assert "unique_teacher=0," in repr(replaced) and "synergy=2e-09" in repr(replaced)
    assert replaced.unique_teacher == 3e-16
    assert "converged=False" in repr(dataclasses.replace(r, converged=False))
    assert "converged" not in repr(r)


def sparse_tables(seed, n_tables):
    """Random tables like discretized activations: small, skewed, many empty cells."""
    rng = np.random.default_rng(seed)
    for _ in range(n_tables):
        shape = (rng.integers(2, 9), rng.integers(2, 9), rng.integers(2, 6))
        p = rng.dirichlet(np.full(np.prod(shape), rng.choice([0.05, 0.3, 1.0]))).reshape(shape)
        p[p < rng.choice([0, 1e-3, 1e-2])] = 0
        yield p / p.sum()


def test_sparse_tables_are_certified():
    # Seeded regression set: before the scaling safeguards one of these (a dense 3x7x3
    # table) ended with a gap of 0.5 nats.  Each result must be feasible and no worse
    # than P; nearly all must be certified to the default tolerance.
    gaps = []
    for p in sparse_tables(5, 150):
        sol = _broja.solve_broja(p)
        assert sol.marginal_error < 1e-12
        assert sol.objective <= _broja._neg_conditional_entropy(p) + 1e-12
        gaps.append(sol.gap)
    gaps = np.array(gaps)
    assert np.mean(gaps <= 1e-8) >= 0.98
    assert gaps.max() < 1e-5


def test_large_alphabets_are_solved_matrix_free(monkeypatch):
    # Above the dense limit no Newton matrix is formed (a 900 x 900 code table once tried
    # to allocate terabytes); with the limit lowered, a small problem takes that path.
    monkeypatch.setattr(_newton, "_DENSE_PAIRS", 10)
    monkeypatch.setattr(_broja, "_METHOD", "primal")  # the primal method's Newton systems
    p = np.random.default_rng(3).dirichlet(np.ones(6 * 6 * 3)).reshape(6, 6, 3)
    sol = _broja.solve_broja(p)
    assert sol.converged
    monkeypatch.undo()
    assert abs(_broja.solve_broja(p).objective - sol.objective) <= 2e-8


def test_problems_beyond_memory_are_refused_clearly():
    p = np.random.default_rng(4).dirichlet(np.ones(5 * 5 * 3)).reshape(5, 5, 3)
    with pytest.raises(MemoryError, match="fewer clusters"):
        pid_from_pmf(p, max_memory=1e3)


def test_no_lower_bound_is_claimed_from_an_underflowed_dual_point():
    # log max K of an underflowed K is -inf: claiming theta.c + inf would certify anything.
    p = np.random.default_rng(5).dirichlet(np.ones(3 * 3 * 2)).reshape(3, 3, 2)
    prob = _broja._Problem(p)
    lam = np.full((prob.n_y, prob.n_t), -400.0)
    mu = np.full((prob.n_y, prob.n_s), -400.0)

    def k_ts(lam, mu):
        return (prob.mask * np.exp(lam[:, :, None] + mu[:, None, :])).sum(axis=0)

    assert not k_ts(lam, mu).any()  # underflowed
    theta = np.concatenate([lam, mu], axis=1)
    assert _broja._dual_bound(prob, theta, k_ts(lam, mu)) == -np.inf
    finite = _broja._dual_bound(prob, theta / 400, k_ts(lam / 400, mu / 400))
    assert np.isfinite(finite) and finite <= _broja.solve_broja(p).objective + 1e-12


def _scaling_state(shape, seed, zeros=0.0):
    """A class-wise scaling problem away from its fixed point (q, residual)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    p[rng.random(shape) < zeros] = 0.0
    prob = _broja._Problem(p / p.sum())
    lam = rng.normal(scale=0.3, size=(prob.n_y, prob.n_t)) * prob.active_t
    mu = rng.normal(scale=0.3, size=(prob.n_y, prob.n_s)) * prob.active_s
    w = np.where(prob.live, rng.random(prob.live.shape), 0.0)
    _, q, residual, _ = _broja._scaling_terms(prob, prob.mask * w,
                                              np.concatenate([lam, mu], axis=1))
    return prob, q, residual, rng


@pytest.mark.parametrize("shape, zeros", [((12, 7, 4), 0.0), ((5, 9, 3), 0.0),
                                          ((8, 8, 5), 0.4)])
def test_schur_complement_matches_the_full_scaling_system(shape, zeros):
    # Both solve the same equations on the directions orthogonal to v = (1, -1), the only
    # ones the solver meets: equal steps on the pairs, equal bilinear forms.
    prob, q, residual, rng = _scaling_state(shape, seed=sum(shape), zeros=zeros)
    full = _broja._scaling_hessian(prob, q, residual)
    on_pairs = lambda x: (x[:, :prob.n_t, None] + x[:, None, prob.n_t:]) * prob.mask
    step = _broja._schur_solve(prob, q, residual)
    np.testing.assert_allclose(on_pairs(step), on_pairs(_broja._solve(full, residual)),
                               rtol=1e-9, atol=1e-12)
    v = np.concatenate([prob.active_t, -1.0 * prob.active_s], axis=1)
    r = rng.normal(size=residual.shape) * np.abs(v)
    r -= (r * v).sum(axis=1, keepdims=True) / (v * v).sum(axis=1, keepdims=True) * v
    forms = [np.einsum("yi,yij,yj->y", r, inverse, r)
             for inverse in (_broja._schur_inverse(prob, q, residual), _broja._inverse(full))]
    np.testing.assert_allclose(*forms, rtol=1e-9)


def test_schur_complement_hands_cancelling_classes_to_the_full_system():
    # T a near copy of S: eliminating one side cancels the other's diagonal.
    rng = np.random.default_rng(3)
    p = np.zeros((6, 6, 3))
    for t in range(6):
        p[t, t] = rng.dirichlet(np.ones(3)) / 6
    p += 1e-10 * rng.random(p.shape)
    prob = _broja._Problem(p / p.sum())
    _, q, residual, _ = _broja._scaling_terms(prob, prob.mask * prob.p.sum(axis=2),
                                              np.zeros((3, 12)))
    with pytest.raises(np.linalg.LinAlgError, match="cancels"):
        _broja._schur_parts(prob, q, residual)
    full = _broja._solve(_broja._scaling_hessian(prob, q, residual), residual)
    np.testing.assert_array_equal(_broja._scaling_solve(prob, q, residual), full)


def test_only_the_cancelling_classes_go_to_the_full_system():
    # Classes 0 and 1 have one teacher and one student value each, tied to each other
    # (their complement cancels), class 2 is dense: the Schur complement serves class 2,
    # the full system classes 0 and 1, and both agree with the full system of every class
    # (on the pairs, and in the bilinear forms).
    rng = np.random.default_rng(4)
    p = np.zeros((5, 5, 3))
    p[0, 0, 0], p[1, 2, 1] = 0.2, 0.3
    p[:, :, 2] = 0.5 * rng.dirichlet(np.ones(25)).reshape(5, 5)
    prob = _broja._Problem(p / p.sum())
    _, q, residual, _ = _broja._scaling_terms(prob, prob.mask * prob.p.sum(axis=2),
                                              np.zeros((3, 10)))
    cancel = _broja._schur_parts(prob, q, residual, cancelling=True)[-1]
    assert cancel.tolist() == [True, True, False]
    full_hessian = _broja._scaling_hessian(prob, q, residual)
    np.testing.assert_array_equal(_broja._scaling_hessian(prob, q, residual, cancel),
                                  full_hessian[cancel])
    on_pairs = lambda x: (x[:, :prob.n_t, None] + x[:, None, prob.n_t:]) * prob.mask
    np.testing.assert_allclose(on_pairs(_broja._scaling_solve(prob, q, residual)),
                               on_pairs(_broja._solve(full_hessian, residual)),
                               rtol=1e-9, atol=1e-14)
    v = np.concatenate([prob.active_t, -1.0 * prob.active_s], axis=1)
    r = rng.normal(size=residual.shape) * np.abs(v)
    r -= (r * v).sum(axis=1, keepdims=True) / (v * v).sum(axis=1, keepdims=True) * v
    forms = [np.einsum("yi,yij,yj->y", r, inverse, r)
             for inverse in (_broja._scaling_inverse(prob, q, residual),
                             _broja._inverse(full_hessian))]
    np.testing.assert_allclose(*forms, rtol=1e-9)


def test_scaling_hessian_diagonal_stays_positive_where_marginals_underflow():
    # q's marginals underflowed to zero: residual = -marginals, and residual + (marginals
    # + floor) rounds to 0 where the floor is below the marginal's ulp.
    p = np.random.default_rng(6).dirichlet(np.ones(4 * 3 * 2)).reshape(4, 3, 2)
    prob = _broja._Problem(p)
    residual = -prob.marginals
    assert ((residual + prob.diagonal_shift) == 0).any()  # the round-off is real
    assert (prob.hessian_diagonal(residual) > 0).all()
    q = np.zeros((prob.n_y, prob.n_t, prob.n_s))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero
        assert np.isfinite(_broja._schur_solve(prob, q, residual)).all()
        assert np.isfinite(_broja._schur_inverse(prob, q, residual)).all()


@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("bands", [None, 3, 8])
@pytest.mark.parametrize("zeros", [0.0, 0.3])
def test_newton_matrix_upper_triangle_matches_the_operator(subset, bands, zeros,
                                                           monkeypatch):
    # The formed matrix (weighted, upper triangle) against the matrix-free product, for
    # all pairs (broadcast, or loops over strided views) and for subsets (gathers), in
    # bands of one teacher value (8 bands of 7) or several (3 bands: 3, 3, 1).
    if bands is not None:
        monkeypatch.setattr(_newton, "_BROADCAST_LIMIT", 0)
        monkeypatch.setattr(_newton, "_ROW_BANDS", bands)
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(7 * 5 * 4)).reshape(7, 5, 4)
    p[rng.random(p.shape) < zeros] = 0.0
    prob = _broja._Problem(p / p.sum())
    live_idx = np.flatnonzero(prob.live.ravel())
    w = np.where(prob.live, rng.random(prob.live.shape), 0.0)
    sc = _broja._scale(prob, w, np.zeros_like(prob.marginals))
    system = _newton.NewtonSystem(prob, live_idx)
    system.sc, system.barrier = sc, np.zeros(len(live_idx))
    dense = np.column_stack([system.matvec(e) for e in np.eye(len(live_idx))])
    pos = np.sort(rng.choice(len(live_idx), len(live_idx) // 2, replace=False)) if subset \
        else np.arange(len(live_idx))
    weights = rng.random(len(pos)) + 0.5
    formed = _newton._reduced_hessian(prob, sc, live_idx[pos], weights=weights)
    expected = weights[:, None] * dense[np.ix_(pos, pos)] * weights[None, :]
    np.testing.assert_allclose(np.triu(formed), np.triu(expected), rtol=1e-9,
                               atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("shape, zeros", [((6, 4, 3), 0.0), ((5, 7, 4), 0.4)])
def test_rank_one_start_is_scaled_exactly(shape, zeros):
    # The closed-form scaling of w = u v^T: q has P's marginals and the product form.
    rng = np.random.default_rng(sum(shape))
    p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    p[rng.random(shape) < zeros] = 0.0
    prob = _broja._Problem(p / p.sum())
    w, theta = _broja._rank_one_start(prob, prob.live.ravel())
    assert w.sum() == pytest.approx(1.0)
    assert np.linalg.matrix_rank(w.reshape(prob.n_t, prob.n_s)) == 1
    _, q, residual, _ = _broja._scaling_terms(prob, prob.mask * w.reshape(prob.n_t, prob.n_s),
                                              theta)
    assert np.abs(residual).max() < 1e-15
    expected = prob.p_ty[:, :, None] * prob.p_sy[:, None, :] / prob.p_ty.sum(axis=1)[:, None, None]
    np.testing.assert_allclose(q, expected, rtol=1e-12, atol=1e-18)


def test_single_source_bound_certifies_optima_without_unique_student_information():
    # At the optimum S is a function of T: Uni(Y: S\T) = 0 and f* = -H(Y|T).  The
    # iterates' own bounds approach such degenerate optima slowly (from the rank-one
    # start, this table stalls at a gap of 5e-8 nats); -H(Y|T), a dual value, closes it.
    p = np.ones((4, 2, 3))
    p[1, 1, :2] = 0.21991, 0.36214
    p[2, 0, 1] = p[3, 1, 1] = 0.0
    p[3, 0, 0] = 1.02202
    p /= p.sum()
    prob = _broja._Problem(p)
    bound = _broja._single_source_bound(prob)
    ty = p.sum(axis=1)
    assert bound == pytest.approx(float((ty * np.log(ty / ty.sum(axis=1, keepdims=True))).sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = _broja.solve_broja(p)
    assert sol.converged and sol.lower_bound == pytest.approx(bound, abs=1e-15)
    assert sol.objective - bound <= 1e-8


def test_single_source_bound_is_a_lower_bound(rng):
    for _ in range(20):
        p = rng.dirichlet(np.full(4 * 3 * 3, 0.3)).reshape(4, 3, 3)
        prob = _broja._Problem(p)
        assert _broja._single_source_bound(prob) <= _broja.solve_broja(p).objective + 1e-12


def _recording_scalings(monkeypatch):
    """Wrap the scaling routine; returns the list it appends each result to."""
    results, scale = [], _broja._newton_scaling

    def recording(*args, **kwargs):
        results.append(scale(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(_broja, "_newton_scaling", recording)
    return results


def test_quick_scalings_stop_early_and_give_no_upper_bound():
    p = np.random.default_rng(7).dirichlet(np.ones(6 * 5 * 4)).reshape(6, 5, 4)
    prob = _broja._Problem(p)
    w, theta = _broja._rank_one_start(prob, prob.live.ravel())
    # Weights 10 % off those of the start: one Newton step leaves about 1e-3.
    w = w.reshape(prob.n_t, prob.n_s) * np.random.default_rng(8).uniform(0.9, 1.1, (6, 5))
    quick = _broja._scale(prob, w, theta, quick=1e-2)
    exact = _broja._scale(prob, w, theta)
    assert quick.quick and not quick.feasible
    assert 1e-15 < quick.relative_error <= 1e-2
    assert exact.feasible and exact.error <= 1e-15


def test_quick_scalings_leave_the_certified_optimum_unchanged(monkeypatch):
    monkeypatch.setattr(_broja, "_METHOD", "primal")  # quick scalings are the primal's
    tables = [np.random.default_rng(seed).dirichlet(np.full(8 * 8 * 4, alpha)).reshape(8, 8, 4)
              for seed, alpha in [(0, 1.0), (1, 0.3), (2, 0.1)]]
    scalings = _recording_scalings(monkeypatch)
    quick = [_broja.solve_broja(p) for p in tables]
    assert any(sc.quick for sc in scalings)  # the early iterations did stop early
    monkeypatch.setattr(_broja, "_QUICK_GAP", np.inf)
    del scalings[:]
    exact = [_broja.solve_broja(p) for p in tables]
    assert not any(sc.quick for sc in scalings)
    for a, b in zip(quick, exact):
        assert a.converged and b.converged and a.marginal_error <= 1e-12
        assert abs(a.objective - b.objective) <= a.gap + b.gap + 1e-12


def test_a_failed_step_from_a_quick_scaling_falls_back_to_exact_ones(monkeypatch):
    # A line search that fails from a rough point must not end the solve: the point is
    # scaled exactly and the iteration retried, with no quick scalings after that.
    monkeypatch.setattr(_broja, "_METHOD", "primal")
    p = np.random.default_rng(9).dirichlet(np.ones(6 * 6 * 3)).reshape(6, 6, 3)
    line_search, calls = _broja._line_search, []

    def failing_once(prob, sc, w, *args):
        calls.append((sc.quick, args[-1]))
        if sc.quick and len([c for c in calls if c[0]]) == 1:
            return None, w, 0.0
        return line_search(prob, sc, w, *args)

    monkeypatch.setattr(_broja, "_line_search", failing_once)
    sol = _broja.solve_broja(p)
    assert sol.converged
    first = next(i for i, (was_quick, _) in enumerate(calls) if was_quick)
    assert all(quick is None for _, quick in calls[first + 1:])


def test_a_quick_scaling_with_a_negative_gap_estimate_keeps_the_dual_positive():
    # A bootstrap resample of a noisy AND gate: a quick iterate's q is infeasible and its
    # value fell below the dual bound; the fraction to the boundary was then taken from
    # that negative "gap", stepped past the boundary and made z negative (overflow).
    p = np.array([[[0.2475, 0.025], [0.15, 0.0375]],
                  [[0.2325, 0.05], [0.045, 0.2125]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = _broja.solve_broja(p)
    assert sol.converged


@pytest.mark.parametrize("dead_pairs", [False, True])
@pytest.mark.parametrize("modified", [False, True])
def test_exact_newton_solve_matches_the_operator(dead_pairs, modified, monkeypatch):
    # Small systems are solved by one float64 factor of D (H + B) D, its diagonal read off
    # the formed matrix; with dead pairs the matrix is formed in bands and its lower
    # triangle is left as it was (filled with 1e308 here), which must neither leak into
    # the solution nor raise floating-point warnings (overflow when scaled).
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.ones(6 * 5 * 3)).reshape(6, 5, 3)
    if dead_pairs:  # no class has both t = 0 and s = 0, nor t = 1 and s = 1
        p[0, :, 1:] = p[:, 0, 0] = p[1, :, :2] = p[:, 1, 2] = 0.0
    prob = _broja._Problem(p / p.sum())
    live_idx = np.flatnonzero(prob.live.ravel())
    assert len(live_idx) == 30 - 2 * dead_pairs
    w = np.where(prob.live, rng.random(prob.live.shape), 0.0)
    sc = _broja._scale(prob, w, np.zeros_like(prob.marginals))
    w_l = w.ravel()[live_idx]
    z = rng.random(len(live_idx)) * 10 ** rng.uniform(-6, 1, len(live_idx))
    system = _newton.NewtonSystem(prob, live_idx)
    full = np.full
    with warnings.catch_warnings(), monkeypatch.context() as patch:
        warnings.simplefilter("error")
        patch.setattr(np, "empty", lambda shape, dtype=float: full(shape, 1e308, dtype))
        system.update(sc, w_l, z)
        if modified:
            system._factorize_exact(modified=True)
        patch.undo()
        assert system.exact and (system.factor is None) == modified
        rhs = rng.normal(size=len(live_idx))
        x = system.solve(rhs)
    np.testing.assert_allclose(system.matvec(x), rhs, rtol=1e-8, atol=1e-10)
    expected_diag = _newton._hessian_diagonal(prob, sc)[live_idx] + z / w_l
    np.testing.assert_allclose(system.diag, expected_diag, rtol=1e-10)
