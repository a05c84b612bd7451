import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from skpid import (ChunkedKMeansDiscretizer, KMeansDiscretizer, score_chunks,
                   score_representations)
from skpid._streaming import merge_moments, replace_rows, reservoir_update

from .conftest import atoms_of


def activations(n=1500, d=12, n_classes=4, seed=0):
    """Class-structured teacher and (noisier) student activations, float64, and labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(n_classes, size=n)
    teacher = 2 * rng.normal(size=(n_classes, d))[y] + rng.normal(size=(n, d))
    student = rng.normal(size=(n_classes, d))[y] + rng.normal(size=(n, d))
    return teacher, student, y


def codes_of(disc, X):
    return disc.transform(X).ravel()


class RowsOnly:
    """An array-like offering only ``shape`` and row slices: converting it whole fails."""

    def __init__(self, data):
        self.data, self.shape, self.ndim = data, data.shape, data.ndim
        self.requested = []

    def __getitem__(self, key):
        assert isinstance(key, slice)
        rows = self.data[key]
        self.requested.append(len(rows))
        return rows

    def __len__(self):
        return len(self.data)

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was materialised")


# -- the discretizer equals KMeansDiscretizer when the sample is every row -------------------
@pytest.mark.parametrize("seed, chunk_size", [(0, 100), (1, 37), (2, 5000)])
def test_same_partition_as_kmeans_discretizer(seed, chunk_size):
    X, _, _ = activations(seed=seed)
    dense = KMeansDiscretizer(n_clusters=6, random_state=seed).fit(X)
    chunked = ChunkedKMeansDiscretizer(n_clusters=6, sample_size=len(X),
                                       chunk_size=chunk_size, random_state=seed).fit(X)
    assert adjusted_rand_score(codes_of(dense, X), codes_of(chunked, X)) == 1.0
    np.testing.assert_allclose(chunked.components_, dense.components_, atol=1e-10)
    np.testing.assert_allclose(chunked.mean_, dense.mean_, atol=1e-12)
    assert chunked.n_samples_seen_ == len(X) and chunked.n_codes_ == 6


def test_same_partition_on_conv_maps_without_normalisation():
    X = np.random.default_rng(3).normal(size=(600, 2, 3, 3))
    X[:300] += 1.5
    dense = KMeansDiscretizer(n_clusters=3, n_components=3, normalize=False,
                              random_state=0).fit(X)
    chunked = ChunkedKMeansDiscretizer(n_clusters=3, n_components=3, normalize=False,
                                       sample_size=600, chunk_size=64, random_state=0).fit(X)
    assert chunked.n_features_in_ == 18
    assert adjusted_rand_score(codes_of(dense, X), codes_of(chunked, X)) == 1.0


def test_random_state_instance_reaches_kmeans_unchanged():
    X, _, _ = activations(n=400)
    dense = KMeansDiscretizer(n_clusters=5, random_state=np.random.RandomState(7)).fit(X)
    chunked = ChunkedKMeansDiscretizer(n_clusters=5, sample_size=400, chunk_size=50,
                                       random_state=np.random.RandomState(7)).fit(X)
    assert adjusted_rand_score(codes_of(dense, X), codes_of(chunked, X)) == 1.0


def test_partial_fit_pieces_equal_fit_on_the_whole():
    X, _, _ = activations(n=500)
    whole = ChunkedKMeansDiscretizer(n_clusters=5, sample_size=500, chunk_size=64,
                                     random_state=0).fit(X)
    pieces = ChunkedKMeansDiscretizer(n_clusters=5, sample_size=500, chunk_size=64,
                                      random_state=0)
    for start, stop in [(0, 5), (5, 105), (105, 106), (106, 500)]:
        assert pieces.partial_fit(X[start:stop]) is pieces
        assert pieces.n_samples_seen_ == stop  # usable after every call
    np.testing.assert_allclose(pieces.components_, whole.components_, atol=1e-10)
    assert adjusted_rand_score(codes_of(whole, X), codes_of(pieces, X)) == 1.0


def test_fit_restarts_and_partial_fit_continues():
    X, _, _ = activations(n=300)
    disc = ChunkedKMeansDiscretizer(n_clusters=3, random_state=0)
    disc.partial_fit(X[:100]).partial_fit(X[100:])
    assert disc.n_samples_seen_ == 300
    disc.fit(X[:50])
    assert disc.n_samples_seen_ == 50
    # fit keeps no state to extend: partial_fit starts a new fit, and says so.
    with pytest.warns(UserWarning, match="partial_fit after fit starts a new fit"):
        disc.partial_fit(X[50:80])
    assert disc.n_samples_seen_ == 30
    disc.partial_fit(X[80:100])
    assert disc.n_samples_seen_ == 50


def test_partial_fit_after_fit_is_a_fresh_partial_fit():
    X, _, _ = activations(n=300)
    params = dict(n_clusters=3, sample_size=100, chunk_size=64, random_state=0)
    fresh = ChunkedKMeansDiscretizer(**params).partial_fit(X[100:])
    after_fit = ChunkedKMeansDiscretizer(**params).fit(X[:100])
    with pytest.warns(UserWarning, match="the 100 rows of fit are not part of it"):
        after_fit.partial_fit(X[100:])
    np.testing.assert_array_equal(after_fit.components_, fresh.components_)
    np.testing.assert_array_equal(codes_of(after_fit, X), codes_of(fresh, X))


def test_fit_keeps_only_what_transform_needs():
    # d = 512 with the default sample_size: the 20,000-row sample and the 512 x 512
    # scatter matrix alone are 40 MB; fit drops them, partial_fit keeps them.
    X = np.random.default_rng(0).normal(size=(21000, 512)).astype(np.float32)
    disc = ChunkedKMeansDiscretizer(n_clusters=10, random_state=0).fit(X)
    fitted = {name for name in vars(disc) if not name.endswith("_") or name.startswith("_")}
    assert fitted == {"n_clusters", "n_components", "normalize", "n_init", "sample_size",
                      "chunk_size", "random_state"}
    assert len(pickle.dumps(disc)) < 1e6
    codes = disc.transform(X[:2000])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(disc)).transform(X[:2000]), codes)
    partial = ChunkedKMeansDiscretizer(n_clusters=10, random_state=0).partial_fit(X)
    assert len(pickle.dumps(partial)) > 4 * 20000 * 512  # the float32 sample alone
    # Dropping the state does not change the fit.
    np.testing.assert_array_equal(partial.transform(X[:2000]), codes)
    assert len(pickle.dumps(partial.fit(X))) < 1e6


def test_subsampled_fit_is_seeded_and_keeps_sample_size_rows():
    X, _, labels = activations(n=3000, n_classes=3)
    fits = [ChunkedKMeansDiscretizer(n_clusters=3, sample_size=200, chunk_size=500,
                                     random_state=4).fit(X) for _ in range(2)]
    np.testing.assert_array_equal(codes_of(fits[0], X), codes_of(fits[1], X))
    assert fits[0].n_samples_seen_ == 3000
    # (The sample itself is kept only by partial_fit, whose next call extends it.)
    partial = ChunkedKMeansDiscretizer(n_clusters=3, sample_size=200, chunk_size=500,
                                       random_state=4).partial_fit(X)
    assert partial._streamed_fit.sample.shape == (200, X.shape[1])
    np.testing.assert_array_equal(codes_of(partial, X), codes_of(fits[0], X))
    # Well separated classes are found from the sample alone.
    assert adjusted_rand_score(labels, codes_of(fits[0], X)) > 0.9


def test_fewer_distinct_rows_than_clusters_warns_and_reduces():
    X = np.repeat(np.eye(3), 10, axis=0)
    with pytest.warns(UserWarning, match="only 3 distinct rows; using n_clusters=3"):
        disc = ChunkedKMeansDiscretizer(n_clusters=10, chunk_size=4, random_state=0).fit(X)
    assert disc.n_clusters_ == disc.n_codes_ == 3


# -- memory: inputs are read in slices ---------------------------------------------------------
def test_memmap_is_fitted_and_transformed_in_slices(tmp_path):
    X = np.random.default_rng(0).normal(size=(700, 3, 2, 2)).astype(np.float32)
    np.save(tmp_path / "acts.npy", X)
    mapped = np.load(tmp_path / "acts.npy", mmap_mode="r")
    params = dict(n_clusters=4, sample_size=300, chunk_size=128, random_state=0)
    from_map = ChunkedKMeansDiscretizer(**params).fit(mapped)
    from_ram = ChunkedKMeansDiscretizer(**params).fit(X)
    codes = from_map.transform(mapped)
    assert codes.shape == (700, 1) and codes.dtype == np.int64
    np.testing.assert_array_equal(codes, from_ram.transform(X))


def test_only_slices_of_chunk_size_rows_are_read():
    X, S, y = activations(n=450)
    rows = RowsOnly(X)
    disc = ChunkedKMeansDiscretizer(n_clusters=3, sample_size=100, chunk_size=64,
                                    random_state=0).fit(rows)
    assert disc.transform(rows).shape == (450, 1)
    teacher, student = RowsOnly(X), RowsOnly(S)
    score_chunks((teacher, student, y), n_clusters=3, sample_size=100, chunk_size=64,
                 random_state=0)
    assert max(rows.requested + teacher.requested + student.requested) == 64


# -- building blocks ---------------------------------------------------------------------------
def stream_moments(X, sizes):
    n, mean, scatter, start = 0, None, None, 0
    for size in sizes:
        n, mean, scatter = merge_moments(n, mean, scatter, X[start:start + size])
        start += size
    assert start == len(X)
    return n, mean, scatter


def test_streaming_covariance_matches_batch_despite_large_offset():
    rng = np.random.default_rng(0)
    # Dyadic values: X - offset is exact, so np.cov of it is an accurate reference.
    k = rng.integers(-1024, 1024, size=(5000, 4))
    base = np.column_stack([k, k[:, 0] + k[:, 1], 4 * k[:, 2] - k[:, 3]]) / 64.0
    offset = 2.0 ** 24
    X = offset + base
    sizes = [1, 7, 500, 1234, 3258]
    n, mean, scatter = stream_moments(X, sizes)
    reference = np.cov(base, rowvar=False)
    assert n == 5000
    # (The mean itself is held to float64's spacing near 2**24, 3.7e-9.)
    np.testing.assert_allclose(mean - offset, base.mean(axis=0), rtol=0, atol=1e-8)
    np.testing.assert_allclose(scatter / (n - 1), reference, rtol=1e-10,
                               atol=1e-10 * np.abs(reference).max())
    # The naive uncentred accumulation fails on this data: the test can tell them apart.
    naive = sum(X[a:a + s].T @ X[a:a + s] for a, s in zip(np.cumsum([0] + sizes), sizes))
    naive = (naive - 5000 * np.outer(X.mean(0), X.mean(0))) / (n - 1)
    assert np.abs(naive - reference).max() > 1e-6 * np.abs(reference).max()


def test_streaming_covariance_is_that_of_the_normalised_rows():
    X, _, _ = activations(n=400)
    disc = ChunkedKMeansDiscretizer(n_clusters=3, chunk_size=33, random_state=0)
    scatter = disc.partial_fit(X)._streamed_fit.scatter
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(scatter / 399, np.cov(Z, rowvar=False), rtol=1e-10,
                               atol=1e-14)


def test_reservoir_keeps_every_row_in_order_until_full():
    rows = np.arange(30.0)[:, None]
    sample = None
    for start in range(0, 30, 7):
        sample = reservoir_update(sample, start, rows[start:start + 7], 40, rng=None)
    np.testing.assert_array_equal(sample, rows)


def test_repeated_slots_in_one_block_keep_the_last_row():
    sample = np.zeros((4, 1))
    replace_rows(sample, np.array([3, 1, 3, 0, 3]), np.array([[1.], [2.], [3.], [4.], [5.]]))
    np.testing.assert_array_equal(sample.ravel(), [4, 2, 0, 5])


def test_reservoir_is_uniform():
    n, m, runs, block = 200, 20, 8000, 45
    rows = np.arange(n)[:, None]
    counts = np.zeros(n)
    for seed in range(runs):
        rng, sample = np.random.default_rng(seed), None
        # Blocks larger than the sample: repeated slots within a block are common.
        for start in range(0, n, block):
            sample = reservoir_update(sample, start, rows[start:start + block], m, rng)
        assert len(np.unique(sample)) == m  # without replacement
        counts[sample.ravel()] += 1
    # Each row is kept with probability m / n: Binomial(runs, m / n) counts.
    p = m / n
    expected, sd = runs * p, np.sqrt(runs * p * (1 - p))
    assert np.abs(counts - expected).max() < 4.5 * sd
    assert ((counts - expected) ** 2).sum() / sd ** 2 < n + 5 * np.sqrt(2 * n)  # chi2

    def z(group):  # z-score of a group's mean count
        return (counts[group].mean() - expected) / (sd / np.sqrt(group.sum()))

    # No group of rows is favoured: those of the filling phase (an off-by-one slot draw
    # would disfavour them by 6 sd), those late in a block (the first of two rows aimed
    # at one slot winning would disfavour them), the second half.
    position = np.arange(n)
    for group in (position < m, position % block >= 30, position >= n // 2):
        assert abs(z(group)) < 3


# -- scoring ---------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", ["broja", "mmi"])
def test_score_chunks_equals_score_representations(measure):
    T, S, y = activations(n=2000, seed=5)
    dense = score_representations(T, S, y, n_clusters=6, n_components=4, measure=measure,
                                  random_state=3)
    chunked = score_chunks((T, S, y), n_clusters=6, n_components=4, measure=measure,
                           sample_size=2000, chunk_size=300, random_state=3)
    np.testing.assert_allclose(atoms_of(chunked), atoms_of(dense), rtol=0, atol=1e-9)
    assert type(chunked) is type(dense)
    assert chunked.n_samples == 2000 and chunked.measure == measure
    assert chunked.mi_teacher > 1.0  # a non-trivial decomposition


def test_score_chunks_from_a_callable_with_string_labels():
    T, S, y = activations(n=900, n_classes=3, seed=2)
    names = np.array(["cat", "dog", "emu"])[y]
    calls = []

    def chunks():
        calls.append(1)
        for start in range(0, 900, 250):  # ragged last chunk, (N, C, L) teacher
            stop = start + 250
            yield T[start:stop].reshape(-1, 3, 4), S[start:stop], list(names[start:stop])

    dense = score_representations(T, S, names, n_clusters=4, random_state=0)
    chunked = score_chunks(chunks, n_clusters=4, sample_size=900, random_state=0)
    assert len(calls) == 2
    np.testing.assert_allclose(atoms_of(chunked), atoms_of(dense), rtol=0, atol=1e-9)


def test_score_chunks_subsampled_is_close_to_the_full_fit():
    T, S, y = activations(n=4000, n_classes=3, seed=1)
    dense = score_representations(T, S, y, n_clusters=3, random_state=0)
    chunked = score_chunks((T, S, y), n_clusters=3, sample_size=500, chunk_size=1000,
                           random_state=0)
    np.testing.assert_allclose(atoms_of(chunked), atoms_of(dense), atol=0.05)


def test_score_chunks_names_the_block_in_warnings():
    T, S, y = activations(n=200)
    with pytest.warns(UserWarning, match="teacher block: n_clusters=10 is more than"):
        score_chunks((np.ones_like(T), S, y), sample_size=200, chunk_size=50,
                     random_state=0)


def test_score_chunks_single_class_warns():
    T, S, _ = activations(n=100)
    with pytest.warns(UserWarning, match="single class"):
        r = score_chunks((T, S, np.zeros(100)), n_clusters=2, random_state=0)
    assert r.mi_joint == 0


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("params, error, match", [
    ({"n_clusters": 0}, ValueError, "n_clusters must be an int >= 1"),
    ({"sample_size": 2.5}, TypeError, "sample_size must be an int"),
    ({"sample_size": 5}, ValueError, "sample_size=5 is smaller than n_clusters=10"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be an int >= 1"),
    ({"n_init": 0}, ValueError, "n_init must be an int >= 1"),
])
def test_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        ChunkedKMeansDiscretizer(**params).fit(np.ones((20, 3)))


def test_bad_data():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="at least 2 samples to fit; got 1 sample"):
        ChunkedKMeansDiscretizer().fit(X[:1])
    disc = ChunkedKMeansDiscretizer(n_clusters=2).partial_fit(X)
    with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 3"):
        disc.partial_fit(X[:, :2])
    bad = X.copy()
    bad[15, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ChunkedKMeansDiscretizer(chunk_size=4).fit(bad)


def good_chunks(n=60):
    T, S, y = activations(n=n)
    return lambda: iter([(T[:30], S[:30], y[:30]), (T[30:], S[30:], y[30:])])


@pytest.mark.parametrize("chunks, error, match", [
    ([np.ones((4, 2))] * 3, TypeError, "chunks must be a callable .* got list"),
    ((np.ones((4, 2)), np.ones((4, 2))), ValueError, "got a tuple of 2"),
    ((np.ones((4, 2)), np.ones((5, 2)), np.zeros(4)), ValueError,
     "same number of samples; got {'teacher': 4, 'student': 5, 'y': 4}"),
    (lambda: iter([(np.ones((4, 2)), np.ones((3, 2)), np.zeros(4))]), ValueError,
     "chunk 0: teacher, student and y must have the same number of samples"),
    (lambda: iter([]), ValueError, "chunks yielded 0 samples"),
    ((np.ones((0, 2)), np.ones((0, 2)), np.zeros(0)), ValueError, "yielded 0 samples"),
    (lambda: iter([np.ones(3)]), ValueError, "triples; chunk 0 is a ndarray"),
    (lambda: iter([(np.ones((4, 2)), np.ones(4), np.zeros(4))]), ValueError,
     "student chunk 0 must have shape"),
    (lambda: iter([(np.ones((4, 2)), np.ones((4, 2)), np.zeros((4, 1)))]), ValueError,
     "y chunk 0 must be 1-D"),
    (lambda: iter([(np.ones((4, 2)), np.ones((4, 2)), np.linspace(0, 1, 4))]), ValueError,
     "y chunk 0: continuous values"),
    (lambda: iter([(np.eye(4), np.eye(4), np.arange(4)), (np.eye(4), np.eye(4),
                                                          np.array(list("abcd")))]),
     ValueError, r"y chunk 1: y holds strings \(\['a', 'b', 'c', 'd'\]\), but the labels seen "
                 r"before are numbers \(\[0, 1, 2, 3\]\)"),
    (lambda: iter([(np.eye(4), np.eye(4), np.arange(4)), (np.eye(3), np.eye(4)[:3],
                                                          np.arange(3))]),
     ValueError, "teacher chunk 1: X has 3 features"),
])
def test_score_chunks_bad_input(chunks, error, match):
    with pytest.raises(error, match=match):
        score_chunks(chunks, n_clusters=2, random_state=0)


def test_score_chunks_second_pass_must_repeat_the_first():
    T, S, y = activations(n=60)
    once = iter([(T, S, y)])  # not fresh: the second pass finds it exhausted
    with pytest.raises(ValueError, match="second pass over chunks yielded 0 rows, the "
                                         "first 60"):
        score_chunks(lambda: once, n_clusters=2, random_state=0)
    passes = []

    def relabelled():
        passes.append(1)
        yield T, S, y + 10 * (len(passes) - 1)

    with pytest.raises(ValueError, match="y chunk 0: the second pass yields labels the first did not"):
        score_chunks(relabelled, n_clusters=2, random_state=0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"measure": "gaussian"}, ValueError, "measure must be one of"),
    ({"base": 1}, ValueError, "base must be"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be an int >= 1"),
    ({"sample_size": 1}, ValueError, "sample_size=1 is smaller than n_clusters=2"),
])
def test_score_chunks_bad_params(kwargs, error, match):
    with pytest.raises(error, match=match):
        score_chunks(good_chunks(), n_clusters=2, **kwargs)


# -- scikit-learn conventions ------------------------------------------------------------------
def test_clone_and_pickle():
    X, _, _ = activations(n=300)
    disc = ChunkedKMeansDiscretizer(n_clusters=4, sample_size=50, chunk_size=64,
                                    random_state=0).partial_fit(X[:200])
    fresh = clone(disc)
    assert fresh.get_params() == disc.get_params() and not hasattr(fresh, "kmeans_")
    copy = pickle.loads(pickle.dumps(disc))
    np.testing.assert_array_equal(copy.transform(X), disc.transform(X))
    # The state that partial_fit extends travels with it.
    np.testing.assert_array_equal(copy.partial_fit(X[200:]).transform(X),
                                  disc.partial_fit(X[200:]).transform(X))


# -- units of the activations (class 1 of issue 13) ------------------------------------------
@pytest.mark.parametrize("normalize", [True, False])
def test_chunks_of_very_different_magnitudes(normalize):
    # The first chunk is 1e-250 times smaller than the rest, which are near float64's
    # largest values: the running power-of-two scale must rescale the moments and the
    # sample gathered so far instead of overflowing (the old float64 scatter matrix was
    # inf at this size) and give KMeansDiscretizer's codes.
    X, _, _ = activations(n=600)
    X = X * 1e300
    X[:100] *= 1e-250
    params = dict(n_clusters=4, normalize=normalize, random_state=0)
    dense = KMeansDiscretizer(**params).fit(X)
    chunked = ChunkedKMeansDiscretizer(sample_size=len(X), chunk_size=100, **params).fit(X)
    assert chunked.scale_ == dense.scale_
    np.testing.assert_allclose(chunked.mean_, dense.mean_, atol=1e-12)
    assert adjusted_rand_score(codes_of(dense, X), codes_of(chunked, X)) == 1.0


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e-300), (np.float64, 1e300),
                                          (np.float32, 1e-36), (np.float32, 1e36)])
def test_score_chunks_does_not_depend_on_the_units(dtype, scale):
    T, S, y = activations(n=600)
    params = dict(n_clusters=4, sample_size=300, chunk_size=200, random_state=0)
    expected = score_chunks((T.astype(dtype), S.astype(dtype), y), **params)
    got = score_chunks(((T * scale).astype(dtype), (S * scale).astype(dtype), y), **params)
    assert atoms_of(got) == pytest.approx(atoms_of(expected), abs=1e-12)
    assert expected.mi_teacher > 1


def test_partial_fit_refuses_to_mix_normalised_and_raw_rows():
    X = np.random.default_rng(0).normal(size=(200, 6))
    disc = ChunkedKMeansDiscretizer(n_clusters=3, n_components=2, random_state=0)
    disc.partial_fit(X[:100])
    disc.set_params(normalize=False)
    with pytest.raises(ValueError, match=r"normalize=False, but this fit started with "
                                         r"normalize=True"):
        disc.partial_fit(X[100:])
    assert disc.n_samples_seen_ == 100  # the refused rows were not added


def test_a_refused_first_partial_fit_keeps_no_rows():
    X = np.random.default_rng(0).normal(size=(50, 6))
    disc = ChunkedKMeansDiscretizer(n_clusters=3, n_components=2, random_state=0)
    with pytest.raises(ValueError, match="needs at least 2 samples to fit; got 1 sample"):
        disc.partial_fit(X[:1])
    disc.partial_fit(X[1:40])
    reference = ChunkedKMeansDiscretizer(n_clusters=3, n_components=2,
                                         random_state=0).partial_fit(X[1:40])
    assert disc.n_samples_seen_ == 39
    np.testing.assert_array_equal(disc.transform(X), reference.transform(X))


def test_an_empty_chunk_adds_nothing_to_a_fit_in_progress():
    X = np.random.default_rng(0).normal(size=(50, 6))
    disc = ChunkedKMeansDiscretizer(n_clusters=3, n_components=2, random_state=0)
    codes = disc.partial_fit(X).transform(X)
    disc.partial_fit(X[:0])
    assert disc.n_samples_seen_ == 50
    np.testing.assert_array_equal(disc.transform(X), codes)
