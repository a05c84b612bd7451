"""Property tests of the BROJA decomposition on random pmfs (hypothesis)."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skpid import pid_from_pmf
from tests.conftest import atoms_of

TOL = 1e-9  # identities hold to round-off
EXACT = 1e-7  # known values (bits)


def within(a, b, *results):
    """|a - b| is within round-off plus the certified gaps of the results involved."""
    return abs(a - b) <= TOL + sum(r.gap for r in results)

shapes = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(2, 4))


@st.composite
def pmfs(draw, shape=None):
    """Random pmfs with exact zeros in some cells (boundary cases matter most)."""
    shape = draw(shapes) if shape is None else shape
    weights = draw(arrays(np.float64, shape, elements=st.floats(0, 1, allow_subnormal=False)))
    zeros = draw(arrays(np.bool_, shape))
    weights = np.where(zeros, 0.0, weights)
    if weights.sum() <= 1e-3:
        weights = np.ones(shape)
    return weights / weights.sum()


# Derandomized: CI runs the same examples every time (a run cannot turn red by chance);
# the examples still cover boundary cases (exact zeros, tiny masses).
common = settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])


@common
@given(pmfs())
def test_identities_and_non_negativity(p):
    r = pid_from_pmf(p)
    assert r.mi_teacher == pytest.approx(r.redundancy + r.unique_teacher, abs=TOL)
    assert r.mi_student == pytest.approx(r.redundancy + r.unique_student, abs=TOL)
    assert r.mi_joint == pytest.approx(atoms_of(r).sum(), abs=TOL)
    assert np.all(atoms_of(r) >= 0)
    assert r.redundancy <= min(r.mi_teacher, r.mi_student) + TOL


@common
@given(pmfs())
def test_swapping_teacher_and_student_swaps_unique_atoms(p):
    r, swapped = pid_from_pmf(p), pid_from_pmf(p.transpose(1, 0, 2))
    assert within(swapped.unique_teacher, r.unique_student, r, swapped)
    assert within(swapped.unique_student, r.unique_teacher, r, swapped)
    assert within(swapped.redundancy, r.redundancy, r, swapped)
    assert within(swapped.synergy, r.synergy, r, swapped)


@common
@given(pmfs(), st.randoms(use_true_random=False))
def test_invariant_under_relabelling(p, random):
    perms = [random.sample(range(n), n) for n in p.shape]
    r, relabelled = pid_from_pmf(p), pid_from_pmf(p[np.ix_(*perms)])
    for a, b in zip(atoms_of(relabelled), atoms_of(r)):
        assert within(a, b, r, relabelled)


@common
@given(pmfs(shape=(1, 3, 3)), st.integers(2, 4), st.data())
def test_nuisance_teacher_has_no_task_atoms(p_sy, n_t, data):
    p_t = data.draw(arrays(np.float64, n_t, elements=st.floats(0.05, 1)))
    p = (p_t / p_t.sum())[:, None, None] * p_sy  # T independent of (S, Y)
    r = pid_from_pmf(p)
    assert within(r.redundancy, 0, r) or r.redundancy == pytest.approx(0, abs=EXACT)
    assert within(r.unique_teacher, 0, r) or r.unique_teacher == pytest.approx(0, abs=EXACT)


@common
@given(pmfs(shape=(4, 1, 3)))
def test_identical_teacher_and_student(p_ty):
    p = np.zeros((4, 4, 3))
    p[np.arange(4), np.arange(4)] = p_ty[:, 0, :]
    r = pid_from_pmf(p)
    # T = S: P itself is optimal, and the solver never returns worse than P.
    assert r.unique_teacher == pytest.approx(0, abs=EXACT)
    assert r.unique_student == pytest.approx(0, abs=EXACT)
    assert r.redundancy == pytest.approx(r.mi_teacher, abs=EXACT)


def test_degenerate_optimum_is_certified():
    p_ty = np.array([[0.147, 0.139], [0.194, 0.083], [0.057, 0.128], [0.129, 0.124]])
    p = np.zeros((4, 4, 2))
    p[np.arange(4), np.arange(4)] = p_ty / p_ty.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pid_from_pmf(p).converged
