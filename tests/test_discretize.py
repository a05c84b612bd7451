import numpy as np
import pytest

from skpid import KMeansDiscretizer, PassthroughDiscretizer, QuantileDiscretizer


def blobs(n=300, k=3, d=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(k, size=n)
    centers = 5 * rng.normal(size=(k, d))
    return centers[labels] + 0.1 * rng.normal(size=(n, d)), labels


def same_partition(a, b):
    """Two codings define the same partition (codes may be permuted)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_recovers_separated_clusters():
    X, labels = blobs()
    codes = KMeansDiscretizer(n_clusters=3, random_state=0).fit_transform(X)
    assert codes.shape == (300, 1) and codes.dtype == np.int64
    assert same_partition(codes.ravel(), labels)


def test_trailing_dimensions_are_flattened():
    rng = np.random.default_rng(1)
    X4 = rng.normal(size=(80, 2, 3, 3))
    for disc in (KMeansDiscretizer(n_clusters=4, random_state=0), QuantileDiscretizer(),
                 PassthroughDiscretizer()):
        a = disc.fit(X4).transform(X4)
        b = type(disc)(**disc.get_params()).fit(X4.reshape(80, -1)).transform(
            X4.reshape(80, -1))
        np.testing.assert_array_equal(a, b)
        assert disc.n_features_in_ == 18


def test_kmeans_is_seeded():
    X = np.random.default_rng(2).normal(size=(200, 10))
    a = KMeansDiscretizer(random_state=3).fit_transform(X)
    b = KMeansDiscretizer(random_state=3).fit_transform(X)
    np.testing.assert_array_equal(a, b)


def test_kmeans_normalizes_rows():
    X, _ = blobs()
    # Row scaling is invisible after L2 normalisation ...
    scaled = X * np.random.default_rng(3).uniform(0.1, 10, size=(len(X), 1))
    d = KMeansDiscretizer(n_clusters=3, random_state=0).fit(X)
    np.testing.assert_array_equal(d.transform(X), d.transform(scaled))
    # ... but not without it.
    raw = KMeansDiscretizer(n_clusters=3, normalize=False, random_state=0).fit(X)
    assert not np.array_equal(raw.transform(X), raw.transform(scaled))


def test_more_clusters_than_distinct_rows_warns_and_reduces():
    X = np.repeat(np.eye(3), 10, axis=0)
    with pytest.warns(UserWarning, match="only 3 distinct rows; using n_clusters=3"):
        d = KMeansDiscretizer(n_clusters=10, random_state=0).fit(X)
    assert d.n_clusters_ == d.n_codes_ == 3
    assert len(np.unique(d.transform(X))) == 3


@pytest.mark.parametrize("disc", [KMeansDiscretizer(), QuantileDiscretizer(),
                                  PassthroughDiscretizer()], ids=lambda d: type(d).__name__)
def test_constant_input_warns(disc):
    with pytest.warns(UserWarning, match="X is constant"):
        disc.fit(np.ones((20, 4)))
    assert np.all(disc.transform(np.ones((5, 4))) == 0)


def test_n_components_reduced_to_rank_bound():
    d = KMeansDiscretizer(n_clusters=2, n_components=5, random_state=0).fit(
        np.random.default_rng(0).normal(size=(30, 3)))
    assert d.n_components_ == 3


def test_quantile_bins_are_equal_frequency_and_combine():
    X = np.random.default_rng(4).normal(size=(1200, 5))
    d = QuantileDiscretizer(n_bins=3, n_components=2).fit(X)
    codes = d.transform(X).ravel()
    assert d.n_codes_ == 9 and set(codes.tolist()) <= set(range(9))
    z = d._project(X)
    # Each component's bin is equal-frequency; the code is row-major over the two.
    np.testing.assert_array_equal(np.bincount(codes // 3), [400, 400, 400])
    np.testing.assert_array_equal(np.bincount(codes % 3), [400, 400, 400])
    assert np.all(np.diff([z[codes // 3 == b, 0].mean() for b in range(3)]) > 0)


def test_passthrough_codes_and_unseen_rows():
    d = PassthroughDiscretizer().fit(np.array([[2, 0], [1, 5], [2, 0], [-0.0, 1]]))
    assert d.n_codes_ == 4
    out = d.transform(np.array([[0.0, 1], [1, 5], [2, 0], [9, 9]])).ravel()
    np.testing.assert_array_equal(out, [0, 1, 2, 3])  # unseen row -> n_codes_ - 1


@pytest.mark.parametrize("params, error, match", [
    ({"n_clusters": 0}, ValueError, "n_clusters must be an int >= 1"),
    ({"n_clusters": 2.5}, TypeError, "n_clusters must be an int"),
    ({"n_components": 0}, ValueError, "n_components must be an int >= 1"),
])
def test_kmeans_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        KMeansDiscretizer(**params).fit(np.random.default_rng(0).normal(size=(20, 3)))


def test_quantile_needs_two_bins():
    with pytest.raises(ValueError, match="n_bins must be an int >= 2"):
        QuantileDiscretizer(n_bins=1).fit(np.ones((5, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_rejected(bad):
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        KMeansDiscretizer().fit(X)


def test_sparse_input_is_rejected():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="[Ss]parse"):
        KMeansDiscretizer().fit(sp.random(20, 5, density=0.5, format="csr"))


@pytest.mark.parametrize("shape", [(400, 30), (30, 400), (60, 2100)],
                         ids=["tall", "wide", "randomized"])
def test_projection_matches_sklearn_pca(shape):
    from sklearn.decomposition import PCA

    from skpid._discretize import fit_projection
    rng = np.random.default_rng(0)
    # A clear spectrum: the leading axes are well defined.
    X = rng.normal(size=shape) * np.linspace(3, 0.1, shape[1])
    mean, axes = fit_projection(X, 4, random_state=0)
    pca = PCA(4, svd_solver="full").fit(X)
    np.testing.assert_allclose(mean, pca.mean_)
    # Same axes up to sign.
    np.testing.assert_allclose(np.abs(axes @ pca.components_.T), np.eye(4), atol=1e-6)


# -- units of the activations (class 1 of issue 13) ------------------------------------------
from skpid import ChunkedKMeansDiscretizer  # noqa: E402
from skpid._discretize import RowScaler, normalize_rows, power_of_two_scale  # noqa: E402

DISCRETIZERS = [KMeansDiscretizer(n_clusters=3, random_state=0),
                KMeansDiscretizer(n_clusters=3, normalize=False, random_state=0),
                KMeansDiscretizer(n_clusters=3, random_state=0),  # on one column below
                QuantileDiscretizer(n_bins=3, n_components=2),
                ChunkedKMeansDiscretizer(n_clusters=3, chunk_size=70, random_state=0),
                ChunkedKMeansDiscretizer(n_clusters=3, normalize=False, chunk_size=70,
                                         sample_size=100, random_state=0)]


@pytest.mark.parametrize("index", range(len(DISCRETIZERS)))
@pytest.mark.parametrize("dtype, scales", [
    (np.float64, [1e-300, 1e-30, 1e-15, 1e-6, 1e6, 1e30, 1e300]),
    (np.float32, [1e-36, 1e-30, 1e-15, 1e-6, 1e6, 1e20, 1e36])], ids=["float64", "float32"])
def test_codes_do_not_depend_on_the_units(index, dtype, scales):
    X, _ = blobs()
    X = X[:, :1] if index == 2 else X
    disc = DISCRETIZERS[index]
    expected = disc.fit_transform(X.astype(dtype))
    assert len(np.unique(expected)) >= 3  # (quantile bins: up to 9 codes)
    for scale in scales:
        scaled = (X * scale).astype(dtype)
        np.testing.assert_array_equal(disc.fit_transform(scaled), expected,
                                      err_msg=f"scale {scale:g}")
        np.testing.assert_array_equal(disc.transform(scaled), expected)


def test_normalize_rows_over_the_whole_float_range():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 7))
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    for dtype, scales in ((np.float64, [1e-307, 1e-160, 1e-15, 1e160, 1e307]),
                          (np.float32, [1e-37, 1e-20, 1e-7, 1e20, 1e37])):
        for scale in scales:
            out = normalize_rows((X * scale).astype(dtype), True)
            assert out.dtype == dtype
            np.testing.assert_allclose(out, unit, rtol=1e-5 if dtype is np.float32 else 1e-12,
                                       atol=1e-6, err_msg=f"{dtype.__name__} {scale:g}")
    X[3] = 0.0
    out = normalize_rows(X, True)
    assert np.all(out[3] == 0) and np.all(np.isfinite(out))  # zero rows stay zero
    np.testing.assert_array_equal(normalize_rows(X[:, :1], True), X[:, :1])  # one column


def test_power_of_two_scale():
    assert power_of_two_scale(np.array([[3.0, -5.0]])) == 4.0
    assert power_of_two_scale(np.zeros((2, 2))) == 1.0
    assert power_of_two_scale(np.array([np.finfo(np.float64).max])) == 2.0 ** 1023
    tiny = np.array([np.finfo(np.float32).smallest_subnormal], dtype=np.float32)
    assert power_of_two_scale(tiny) == 2.0 ** -149
    assert np.all(np.abs(np.array([[1e300, -3e300]]) / power_of_two_scale(
        np.array([[1e300, -3e300]]))) < 2)


def test_row_scaler():
    X = np.random.default_rng(0).normal(size=(20, 3)) * 1e200
    np.testing.assert_allclose(np.linalg.norm(RowScaler().fit_transform(X), axis=1), 1.0)
    raw = RowScaler(normalize=False).fit(X)
    assert raw.scale_ == power_of_two_scale(X)
    assert np.abs(raw.transform(X)).max() < 2


def test_quantile_codes_beyond_an_index_are_refused_clearly():
    X = np.random.default_rng(0).normal(size=(100, 50))
    with pytest.raises(ValueError, match=r"n_components=30 with n_bins=4 gives 1\.15e\+18 "
                                         r"codes .* use fewer components"):
        QuantileDiscretizer(n_components=30).fit(X)
    assert QuantileDiscretizer(n_components=3).fit(X).n_codes_ == 64
