import numpy as np
import pytest

from skpid._pid._gaussian import gaussian_mi, gaussian_pid


def random_cov(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + 0.3 * np.eye(d)


def atoms(r):
    return np.array([r.redundancy, r.unique_teacher, r.unique_student, r.synergy])


def test_mutual_information_closed_form():
    # y = x + noise with var(x) = 1, var(noise) = s2: I = 0.5 log2(1 + 1 / s2).
    s2 = 0.25
    cov = np.array([[1.0, 1.0], [1.0, 1.0 + s2]])
    assert gaussian_mi(cov, np.array([0]), np.array([1])) == pytest.approx(
        0.5 * np.log(1 + 1 / s2))


@pytest.mark.parametrize("dims", [(1, 1), (2, 3), (3, 2), (4, 4)])
@pytest.mark.parametrize("seed", range(3))
def test_univariate_target_broja_equals_mmi(dims, seed):
    # Barrett (2015): for a scalar Gaussian target, the BROJA optimum is at MMI.  The
    # BROJA path runs a numerical optimisation, so this checks the optimiser.
    d_t, d_s = dims
    cov = random_cov(d_t + d_s + 1, seed)
    broja = gaussian_pid(cov, d_t, d_s, measure="broja")
    mmi = gaussian_pid(cov, d_t, d_s, measure="mmi")
    np.testing.assert_allclose(atoms(broja), atoms(mmi), atol=1e-7)
    assert broja.redundancy == pytest.approx(min(broja.mi_teacher, broja.mi_student))


@pytest.mark.parametrize("seed", range(4))
def test_multivariate_target_identities_and_bounds(seed):
    cov = random_cov(2 + 2 + 3, seed)
    r = gaussian_pid(cov, 2, 2)
    mmi = gaussian_pid(cov, 2, 2, measure="mmi")
    assert np.all(atoms(r) >= 0)
    assert r.redundancy + r.unique_teacher == pytest.approx(r.mi_teacher)
    assert r.redundancy + r.unique_student == pytest.approx(r.mi_student)
    assert atoms(r).sum() == pytest.approx(r.mi_joint)
    # Gaussian BROJA redundancy never exceeds MMI's (MMI is the largest redundancy
    # consistent with the pairwise marginals).
    assert r.redundancy <= mmi.redundancy + 1e-9


def test_multivariate_target_differs_from_mmi():
    # Teacher reads y1, student reads y2 (independent components of a 2-D target): all
    # the information is unique, none redundant; MMI would call min(I, I) redundant.
    cov = np.eye(4)
    cov[0, 2] = cov[2, 0] = 0.8   # T ~ y1
    cov[1, 3] = cov[3, 1] = 0.8   # S ~ y2
    r = gaussian_pid(cov, 1, 1)
    mmi = gaussian_pid(cov, 1, 1, measure="mmi")
    assert r.redundancy == pytest.approx(0.0, abs=1e-7)
    assert r.unique_teacher == pytest.approx(r.mi_teacher)
    assert mmi.redundancy == pytest.approx(r.mi_teacher)
    assert r.mi_teacher > 0.5


def test_invariant_to_invertible_maps_of_each_block():
    cov = random_cov(2 + 2 + 2, 7)
    rng = np.random.default_rng(0)
    m = np.eye(6)
    m[:2, :2], m[2:4, 2:4] = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    np.testing.assert_allclose(atoms(gaussian_pid(m @ cov @ m.T, 2, 2)),
                               atoms(gaussian_pid(cov, 2, 2)), atol=1e-6)


def test_nuisance_teacher_has_no_teacher_atoms():
    cov = random_cov(5, 3)
    cov[0, :] = cov[:, 0] = 0.0   # T independent of everything
    cov[0, 0] = 1.0
    r = gaussian_pid(cov, 1, 2)
    assert r.mi_teacher == pytest.approx(0.0, abs=1e-12)
    assert r.redundancy == pytest.approx(0.0, abs=1e-9)
    assert r.unique_teacher == pytest.approx(0.0, abs=1e-9)


def test_base_scales_everything():
    cov = random_cov(4, 1)
    bits, nats = gaussian_pid(cov, 1, 2), gaussian_pid(cov, 1, 2, base=np.e)
    np.testing.assert_allclose(atoms(bits) * np.log(2), atoms(nats))


@pytest.mark.parametrize("cov, dims, match", [
    (np.ones((3, 3)), (1, 1), "positive definite"),
    (np.eye(3), (1, 2), "leave >= 1 target"),
    (np.eye(3)[:2], (1, 1), "square"),
    (np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]), (1, 1), "symmetric"),
])
def test_bad_covariance(cov, dims, match):
    with pytest.raises(ValueError, match=match):
        gaussian_pid(cov, *dims)


# -- the noise floor of plug-in estimates (class 9 of issue 13) ------------------------------
@pytest.mark.parametrize("dim_a, dim_b, n", [(1, 1, 30), (4, 2, 20), (10, 9, 40)])
def test_noise_floor_is_the_mean_plug_in_estimate_of_independent_data(dim_a, dim_b, n):
    from skpid._pid._gaussian import gaussian_noise_floor
    rng = np.random.default_rng(0)
    a, b = np.arange(dim_a), np.arange(dim_a, dim_a + dim_b)
    estimates = [gaussian_mi(np.cov(rng.normal(size=(n, dim_a + dim_b)), rowvar=False), a, b)
                 for _ in range(400)]
    spread = np.std(estimates) / np.sqrt(len(estimates))
    assert gaussian_noise_floor(dim_a, dim_b, n) == pytest.approx(np.mean(estimates),
                                                                  abs=4 * spread)


def test_noise_floor_bad_arguments():
    from skpid._pid._gaussian import gaussian_noise_floor
    with pytest.raises(ValueError, match=r"n_samples must exceed dim_a \+ dim_b = 11"):
        gaussian_noise_floor(10, 1, 11)
    with pytest.raises(ValueError, match="dim_a and dim_b must be >= 1"):
        gaussian_noise_floor(0, 1, 11)
