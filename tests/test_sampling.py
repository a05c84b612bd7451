"""Estimates from samples against known answers: convergence, bias correction, CIs."""

import warnings
from functools import partial

import numpy as np
import pytest

from skpid import pid_from_pmf, score_representations
from skpid._pid._gaussian import gaussian_pid
from skpid._sampling import QUANTITIES, codes_pid, estimate_pid
from skpid.datasets import (make_gaussian_teacher_student, make_signal_nuisance,
                            noisy_gate_pmf, sample_pmf)
from skpid.exceptions import ConvergenceWarning

ATOMS4 = QUANTITIES[:4]


def vector(result, names=ATOMS4):
    return np.array([getattr(result, name) for name in names])


def estimate(p, n, seed, measure="broja", **kwargs):
    t, s, y = sample_pmf(p, n, random_state=seed)
    fn = partial(codes_pid, t, s, y, p.shape, measure, 2.0)
    with warnings.catch_warnings():
        # Rare sampled tables make the solver stop at a ~1e-3 gap: irrelevant here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimate_pid(fn, n, random_state=seed, **kwargs)


def structured_pmf():
    """Y uniform on 4 classes; T = noisy class view x a nuisance bit; S = noisier view."""
    k = 4
    view = lambda keep: keep * np.eye(k) + (1 - keep) / k  # p(view | y)
    t_view, s_view = view(0.7), view(0.5)
    p = np.einsum("yt,n,ys->tnsy", t_view, np.full(2, 0.5), s_view) / k
    return p.reshape(2 * k, k, k)


@pytest.mark.parametrize("gate", ["AND", "UNQ_T", "RDN"])
def test_plugin_estimate_approaches_truth(gate):
    p = noisy_gate_pmf(gate, 0.2)
    truth = vector(pid_from_pmf(p))
    errors = [np.abs(vector(estimate(p, n, seed=n)) - truth).max()
              for n in (100, 1000, 100_000)]
    assert errors[-1] < 0.01
    assert errors[-1] < errors[0]


def test_permutation_correction_reduces_small_sample_error():
    p = structured_pmf()
    truth = vector(pid_from_pmf(p))
    raw_err, corrected_err = [], []
    for seed in range(8):
        r = estimate(p, 200, seed, bias_correction="permutation", n_permutations=20)
        raw_err.append(np.abs(np.array([r.plugin[q] for q in ATOMS4]) - truth).sum())
        corrected_err.append(np.abs(vector(r) - truth).sum())
    # The plug-in overstates the task information at n=200 (about 128 cells).
    assert np.mean(corrected_err) < 0.85 * np.mean(raw_err)


def test_corrected_estimate_keeps_the_identities():
    r = estimate(structured_pmf(), 150, 0, bias_correction="permutation", n_permutations=10)
    assert min(vector(r)) >= 0
    assert r.mi_teacher == pytest.approx(r.redundancy + r.unique_teacher)
    assert r.mi_student == pytest.approx(r.redundancy + r.unique_student)
    assert r.mi_joint == pytest.approx(vector(r).sum())
    assert r.mi_teacher <= r.plugin["mi_teacher"]
    assert set(r.bias) == set(QUANTITIES) and r.bias["mi_joint"] > 0


def test_bootstrap_intervals_cover_truth_at_nominal_rate():
    # MMI keeps 100 x 100 resamples fast; on this symmetric gate MMI and BROJA agree at
    # the truth, and the bootstrap code is the same for both measures.
    p = noisy_gate_pmf("AND", 0.3)
    truth = pid_from_pmf(p)
    names = ("redundancy", "synergy", "mi_teacher", "mi_joint")
    hits = np.zeros(len(names))
    n_draws = 100
    for seed in range(n_draws):
        r = estimate(p, 400, seed, measure="mmi", n_bootstrap=100, confidence=0.9)
        lo, hi = (np.array([r.ci[q][i] for q in names]) for i in (0, 1))
        hits += (lo <= vector(truth, names)) & (vector(truth, names) <= hi)
    coverage = hits / n_draws
    # Nominal 0.9; with 100 draws a binomial standard error is 0.03.
    assert np.all(coverage >= 0.8), coverage
    assert np.all(coverage <= 0.98), coverage


@pytest.mark.slow
def test_broja_bootstrap_coverage():
    p = noisy_gate_pmf("AND", 0.3)
    truth = vector(pid_from_pmf(p), ("redundancy", "synergy"))
    hits = np.zeros(2)
    for seed in range(40):
        r = estimate(p, 400, seed, n_bootstrap=100, confidence=0.9)
        lo, hi = (np.array([r.ci[q][i] for q in ("redundancy", "synergy")]) for i in (0, 1))
        hits += (lo <= truth) & (truth <= hi)
    assert np.all(hits / 40 >= 0.75)


def test_bootstrap_is_seeded_and_parallel_invariant():
    p = noisy_gate_pmf("AND", 0.3)
    a = estimate(p, 300, 1, n_bootstrap=16, bias_correction="permutation", n_permutations=8)
    b = estimate(p, 300, 1, n_bootstrap=16, bias_correction="permutation", n_permutations=8,
                 n_jobs=2)
    assert a.ci == b.ci and a.bias == b.bias
    for name, (lo, hi) in a.ci.items():
        assert lo <= getattr(a, name) <= hi
    assert "ci0.95" in repr(a)


def test_gaussian_measure_approaches_closed_form():
    T, S, y, cov = make_gaussian_teacher_student(20_000, n_teacher=2, n_student=2,
                                                 random_state=0)
    truth = gaussian_pid(cov, 2, 2)
    r = score_representations(T, S, y, measure="gaussian", n_components=2, normalize=False,
                              random_state=0)
    np.testing.assert_allclose(vector(r), vector(truth), atol=0.02)
    small = score_representations(T[:200], S[:200], y[:200], measure="gaussian",
                                  n_components=2, normalize=False, random_state=0)
    assert np.abs(vector(small) - vector(truth)).max() > np.abs(vector(r) - vector(truth)).max()


def test_nuisance_teacher_has_no_teacher_atoms():
    T, S, y = make_signal_nuisance(3000, teacher_signal=False, random_state=0)
    r = score_representations(T, S, y, n_clusters=4, random_state=0,
                              bias_correction="permutation", n_permutations=10)
    assert r.redundancy < 0.01 and r.unique_teacher < 0.01
    assert r.mi_student > 1.9  # the student sees the 2-bit class


def test_signal_teacher_and_student_are_redundant():
    T, S, y = make_signal_nuisance(3000, random_state=1)
    r = score_representations(T, S, y, n_clusters=4, random_state=0)
    assert r.redundancy == pytest.approx(r.entropy_y, abs=0.01)
