"""Property and fuzz tests of the estimators, discretizers, streaming and the CLI (hypothesis).

Every public entry point of the scoring half gets random shapes, dtypes, units, label
types and degenerate inputs (one class, constant columns, fewer samples than clusters).
Properties: atoms >= 0 and the PID identities; no numpy RuntimeWarning; the same numbers
after rescaling the activations (by powers of two, which the pipeline undoes exactly, so
equality is exact) and after renaming the classes; bad input raises ValueError or
TypeError naming the argument.  Derandomized, as tests/pid/test_properties.py: CI runs the
same examples every time.
"""

import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skpid import (ChunkedKMeansDiscretizer, KMeansDiscretizer, PassthroughDiscretizer,
                   PIDEstimator, QuantileDiscretizer, score_chunks, score_layers,
                   score_representations)
from skpid.__main__ import main
from tests.conftest import atoms_of

fuzz = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
few = settings(fuzz, max_examples=12)

TOL = 1e-9
# Exponents k of the scales 2**k applied to the data: far into both ends of each dtype's
# range while every entry stays a normal number (|entries| are in about 1e-4 .. 10).
EXPONENTS = {np.float64: (-900, 900), np.float32: (-95, 95)}


def assert_identities(r):
    atoms = atoms_of(r)
    assert np.all(np.isfinite(atoms)) and np.all(atoms >= 0), r
    assert r.redundancy + r.unique_teacher == pytest.approx(r.mi_teacher, abs=TOL)
    assert r.redundancy + r.unique_student == pytest.approx(r.mi_student, abs=TOL)
    assert atoms.sum() == pytest.approx(r.mi_joint, abs=TOL)


@contextlib.contextmanager
def no_runtime_warnings():
    """UserWarnings about the data are fine; numpy's overflow / invalid-value warnings
    (a silent wrong number in the making) are not."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    bad = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not bad, [str(w.message) for w in bad]


# -- data ----------------------------------------------------------------------------------
@st.composite
def problems(draw, min_samples=2, max_samples=60):
    """(teacher, student, class codes) with random shapes, structure and degeneracies."""
    n = draw(st.integers(min_samples, max_samples))
    d_t, d_s = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    n_classes = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    y = rng.integers(0, n_classes, size=n)
    signal = draw(st.floats(0, 3))
    teacher = signal * rng.normal(size=(n_classes, d_t))[y] + rng.normal(size=(n, d_t))
    student = rng.normal(size=(n, d_s))
    degenerate = draw(st.sampled_from(["none", "constant column", "constant block",
                                       "zero rows", "duplicate rows", "integers"]))
    if degenerate == "constant column":
        teacher[:, 0] = 1.5
    elif degenerate == "constant block":
        student[:] = 2.0
    elif degenerate == "zero rows":
        teacher[: n // 2] = 0.0
    elif degenerate == "duplicate rows":
        teacher = np.repeat(teacher[:2], (n + 1) // 2, axis=0)[:n]
    elif degenerate == "integers":
        teacher, student = np.round(3 * teacher), np.round(3 * student)
    return teacher, student, y


def as_label_type(y, kind):
    """Class codes as labels of another type (one type per array)."""
    if kind == "int":
        return y
    if kind == "str":
        return np.array(["ant", "bee", "cat", "dog"])[y]
    if kind == "float":
        return y.astype(float) - 0.0
    if kind == "bool":
        return y % 2 == 1
    if kind == "object":
        return np.array(["w", "x", "y", "z"], dtype=object)[y]
    if kind == "list":
        return [int(v) + 100 for v in y]
    raise AssertionError(kind)


LABEL_KINDS = ["int", "str", "float", "bool", "object", "list"]
DTYPES = [np.float64, np.float32, np.float16, np.int64]


# -- PIDEstimator and score_representations ------------------------------------------------
@fuzz
@given(problems(), st.sampled_from(LABEL_KINDS), st.sampled_from(DTYPES),
       st.sampled_from(["broja", "mmi"]), st.sampled_from(["kmeans", "quantile"]),
       st.integers(1, 12), st.booleans())
def test_estimator_atoms_are_valid(problem, label_kind, dtype, measure, discretizer,
                                   n_clusters, normalize):
    T, S, y = problem
    labels = as_label_type(y, label_kind)
    X = np.hstack([T, S]).astype(dtype)
    est = PIDEstimator(teacher_columns=slice(0, T.shape[1]), measure=measure,
                       discretizer=discretizer, n_clusters=n_clusters, n_components=2,
                       normalize=normalize, random_state=0)
    with no_runtime_warnings():
        est.fit(X, labels)
        codes = est.transform(X)
        score = est.score(X, labels)
    assert_identities(est.result_)
    assert est.result_.mi_joint <= est.result_.entropy_y + TOL
    assert codes.shape == (len(y), 2) and codes.dtype.kind == "i"
    assert score == pytest.approx(est.redundancy_, abs=1e-7)  # same data, same codes
    assert len(est.classes_) == len(set(np.asarray(labels).tolist()))


@fuzz
@given(problems(min_samples=4), st.sampled_from([np.float64, np.float32]), st.data(),
       st.booleans(), st.sampled_from(["kmeans", "quantile"]))
def test_scores_are_exactly_unit_free(problem, dtype, data, normalize, discretizer):
    T, S, y = problem
    k = data.draw(st.integers(*EXPONENTS[dtype]), label="exponent")
    params = dict(n_clusters=3, n_components=2, normalize=normalize,
                  discretizer=discretizer, random_state=1)
    with no_runtime_warnings():
        base = score_representations(T.astype(dtype), S.astype(dtype), y, **params)
        scaled = score_representations((T * 2.0 ** k).astype(dtype),
                                       (S * 2.0 ** k).astype(dtype), y, **params)
    np.testing.assert_array_equal(atoms_of(scaled), atoms_of(base))


@few
@given(problems(min_samples=40, max_samples=80), st.integers(-900, 900))
def test_gaussian_measure_is_unit_free_and_valid(problem, k):
    T, S, y = problem
    if len(np.unique(y)) < 2:
        y = np.arange(len(y)) % 2
    params = dict(measure="gaussian", n_components=2, random_state=0)
    with no_runtime_warnings():
        base = score_representations(T, S, y, **params)
        scaled = score_representations(T * 2.0 ** k, S * 2.0 ** k, y, **params)
    assert np.all(atoms_of(base) >= 0)
    np.testing.assert_allclose(atoms_of(scaled), atoms_of(base), atol=1e-9)


@fuzz
@given(problems(min_samples=6), st.permutations(range(4)),
       st.sampled_from(["str", "int", "object"]))
def test_renaming_classes_changes_nothing(problem, permutation, label_kind):
    T, S, y = problem
    renamed = as_label_type(np.asarray(permutation)[y], label_kind)
    params = dict(n_clusters=3, n_components=2, random_state=0)
    base = score_representations(T, S, y, **params)
    other = score_representations(T, S, renamed, **params)
    np.testing.assert_allclose(atoms_of(other), atoms_of(base), atol=1e-7)


@few
@given(st.lists(problems(min_samples=8, max_samples=30), min_size=1, max_size=3),
       st.booleans())
def test_score_layers_is_score_representations_per_pair(pair_problems, named):
    n = min(len(p[2]) for p in pair_problems)
    y = pair_problems[0][2][:n]
    pairs = [(T[:n], S[:n]) for T, S, _ in pair_problems]
    pairs = {f"layer{i}": pair for i, pair in enumerate(pairs)} if named else pairs
    out = score_layers(pairs, y, n_clusters=2, n_components=2, random_state=0)
    for key, (T, S) in (pairs.items() if named else enumerate(pairs)):
        expected = score_representations(T, S, y, n_clusters=2, n_components=2,
                                         random_state=0)
        np.testing.assert_array_equal(atoms_of(out[key]), atoms_of(expected))


# -- bad input ------------------------------------------------------------------------------
BAD_PARAMETERS = [
    ("n_clusters", st.sampled_from([0, -3, 2.5, "4", None, True])),
    ("n_components", st.sampled_from([0, -1, 1.5, "2"])),
    ("measure", st.text(max_size=5).filter(lambda s: s not in ("broja", "mmi", "gaussian"))),
    ("base", st.sampled_from([0, 1, -2, float("nan"), float("inf"), "2"])),
    ("scoring", st.text(max_size=5)),
    ("bias_correction", st.sampled_from(["jackknife", 1])),
    ("n_permutations", st.sampled_from([0, -1, 1.5])),
    ("n_bootstrap", st.sampled_from([-1, 0.5])),
    ("confidence", st.sampled_from([0, 1, 1.5, -0.1, float("nan"), "0.9"])),
    ("discretizer", st.sampled_from(["bogus", 3])),
]


@fuzz
@given(st.sampled_from(BAD_PARAMETERS).flatmap(
    lambda item: st.tuples(st.just(item[0]), item[1])))
def test_bad_parameters_are_named(bad):
    name, value = bad
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 2, 30)
    with pytest.raises((ValueError, TypeError), match=name):
        PIDEstimator(**{name: value}).fit(X, y)
    if name not in ("scoring",):  # (score_representations has no scoring)
        with pytest.raises((ValueError, TypeError), match=name):
            score_representations(X[:, :2], X[:, 2:], y, **{name: value})


def bad_labels(y, kind):
    y = y.astype(object)
    if kind == "nan":
        y[0] = np.nan
    elif kind == "none":
        y[-1] = None
    elif kind == "mixed":
        y[0] = "a"
    elif kind == "2-D":
        return np.stack([y, y], axis=1)
    elif kind == "inf":
        return np.where(np.arange(len(y)) == 1, np.inf, y.astype(float))
    elif kind == "unhashable":
        y[0] = [1]
    return y


@fuzz
@given(problems(min_samples=4), st.sampled_from(["nan", "none", "mixed", "2-D", "inf",
                                                 "unhashable"]),
       st.sampled_from(["estimator", "score_representations", "score_chunks", "score"]))
def test_bad_labels_are_named(problem, kind, entry):
    T, S, y = problem
    labels = bad_labels(y, kind)
    with pytest.raises((ValueError, TypeError), match=r"\by\b"):
        if entry == "estimator":
            PIDEstimator(n_clusters=2).fit(np.hstack([T, S]), labels)
        elif entry == "score_representations":
            score_representations(T, S, labels, n_clusters=2)
        elif entry == "score_chunks":
            score_chunks((T, S, labels), n_clusters=2, sample_size=10, chunk_size=3)
        else:
            est = PIDEstimator(n_clusters=2, random_state=0).fit(
                np.hstack([T, S]), np.arange(len(y)) % 2)
            est.score(np.hstack([T, S]), labels)


@fuzz
@given(problems(min_samples=4), st.sampled_from(["nan", "inf", "strings", "1-D", "empty",
                                                 "complex"]),
       st.sampled_from(["teacher", "student"]))
def test_bad_activations_are_named(problem, kind, which):
    T, S, y = problem
    arrays = {"teacher": T.copy(), "student": S.copy()}
    bad = arrays[which]
    if kind == "nan":
        bad[0, 0] = np.nan
    elif kind == "inf":
        bad[-1, -1] = -np.inf
    elif kind == "strings":
        bad = bad.astype(str)
    elif kind == "1-D":
        bad = bad[:, 0]
    elif kind == "empty":
        bad = bad[:, :0]
    elif kind == "complex":
        bad = bad + 1j
    arrays[which] = bad
    with pytest.raises((ValueError, TypeError), match=which):
        score_representations(arrays["teacher"], arrays["student"], y, n_clusters=2)


# -- discretizers ---------------------------------------------------------------------------
DISCRETIZERS = {
    "kmeans": lambda k: KMeansDiscretizer(n_clusters=k, n_components=2, random_state=0),
    "kmeans-raw": lambda k: KMeansDiscretizer(n_clusters=k, normalize=False, random_state=0),
    "quantile": lambda k: QuantileDiscretizer(n_bins=max(k, 2), n_components=2),
    "passthrough": lambda k: PassthroughDiscretizer(),
    "chunked": lambda k: ChunkedKMeansDiscretizer(n_clusters=k, sample_size=max(k, 7),
                                                  chunk_size=5, random_state=0),
}


@fuzz
@given(problems(), st.sampled_from(sorted(DISCRETIZERS)), st.integers(1, 12),
       st.sampled_from(DTYPES), st.integers(-60, 60))
def test_discretizers_give_valid_unit_free_codes(problem, name, n_clusters, dtype, k):
    T, _, _ = problem
    X = T.astype(dtype)
    with no_runtime_warnings():
        disc = DISCRETIZERS[name](n_clusters).fit(X)
        codes = disc.transform(X)
    assert codes.shape == (len(X), 1) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < disc.n_codes_
    if name in ("kmeans", "kmeans-raw", "quantile", "chunked"):
        np.testing.assert_array_equal(disc.fit_transform(X), codes)
        if dtype in (np.float64, np.float32):  # every entry stays normal at 2**+-60
            with no_runtime_warnings():
                scaled = DISCRETIZERS[name](n_clusters).fit(X * dtype(2.0 ** k))
            np.testing.assert_array_equal(scaled.transform(X * dtype(2.0 ** k)), codes)


@fuzz
@given(st.sampled_from(sorted(DISCRETIZERS)),
       st.sampled_from(["nan", "strings", "0-D", "one row", "features"]))
def test_discretizers_refuse_bad_data_in_words(name, kind):
    X = np.random.default_rng(0).normal(size=(20, 3))
    disc = DISCRETIZERS[name](3)
    if kind == "features":
        disc.fit(X)
        with pytest.raises(ValueError, match="X has 2 features"):
            disc.transform(X[:, :2])
        return
    # (Strings that spell numbers are converted, as by scikit-learn's own estimators.)
    bad = {"nan": np.where(X > 1, np.nan, X), "strings": np.where(X > 0, "up", "down"),
           "0-D": np.float64(3),
           "one row": X[:1]}[kind]
    with pytest.raises((ValueError, TypeError)) as info:
        disc.fit(bad)
    message = str(info.value)
    assert any(word in message for word in ("NaN", "could not convert", "string",
                                            "Expected 2D", "sample")), message


# -- score_chunks ---------------------------------------------------------------------------
@fuzz
@given(problems(min_samples=4, max_samples=50), st.lists(st.integers(1, 20), min_size=1,
                                                         max_size=5),
       st.sampled_from(["int", "str", "float", "bool"]), st.integers(-300, 300))
def test_score_chunks_ignores_chunking_and_units(problem, cuts, label_kind, k):
    T, S, y = problem
    labels = np.asarray(as_label_type(y, label_kind))
    edges = np.unique(np.clip(np.cumsum(cuts), 0, len(y)))
    bounds = list(zip(np.r_[0, edges], np.r_[edges, len(y)]))

    def stream(scale=1.0):
        return lambda: ((T[a:b] * scale, S[a:b] * scale, labels[a:b]) for a, b in bounds)

    params = dict(n_clusters=3, n_components=2, sample_size=len(y), random_state=0)
    with no_runtime_warnings():
        whole = score_chunks((T, S, labels), chunk_size=len(y), **params)
        chunked = score_chunks(stream(), chunk_size=7, **params)
        scaled = score_chunks(stream(2.0 ** k), chunk_size=7, **params)
    assert_identities(whole)
    np.testing.assert_allclose(atoms_of(chunked), atoms_of(whole), atol=1e-9)
    np.testing.assert_allclose(atoms_of(scaled), atoms_of(chunked), atol=1e-9)


# -- the command line -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_files():
    folder = Path(tempfile.mkdtemp(prefix="skpid-cli-fuzz-"))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=60)
    np.save(folder / "T.npy", np.eye(3)[y] + 0.1 * rng.normal(size=(60, 3)))
    np.save(folder / "S.npy", rng.normal(size=(60, 2, 2)).astype(np.float32))
    np.save(folder / "y.npy", y)
    return folder


OPTIONS = {  # option -> (strategy of values, is the value valid)
    "--n-clusters": (st.integers(-3, 6), lambda v: v >= 1),
    "--n-components": (st.integers(-2, 4), lambda v: v >= 1),
    "--n-permutations": (st.integers(-2, 3), lambda v: v >= 1),
    "--n-bootstrap": (st.integers(-2, 3), lambda v: v >= 0),
    "--n-jobs": (st.integers(-2, 1), lambda v: v != 0),
    "--seed": (st.integers(-5, 2 ** 33), lambda v: 0 <= v < 2 ** 32),
    "--base": (st.floats(allow_nan=True, allow_infinity=True),
               lambda v: np.isfinite(v) and v > 0 and v != 1),
    "--confidence": (st.floats(-1, 2), lambda v: 0 < v < 1),
}


@settings(fuzz, max_examples=30)
@given(st.sampled_from(sorted(OPTIONS)).flatmap(
    lambda option: st.tuples(st.just(option), OPTIONS[option][0])),
       st.sampled_from(["", "x", "--"]))
def test_cli_options_are_checked_by_name(cli_files, option_value, garbage):
    option, value = option_value
    valid = OPTIONS[option][1](value)
    text = repr(value) if isinstance(value, float) else str(value)
    if garbage:  # not a number at all
        text, valid = text + garbage, False
    args = ["score", "--teacher", str(cli_files / "T.npy"), "--student",
            str(cli_files / "S.npy"), "--labels", str(cli_files / "y.npy"), "--n-clusters",
            "3", f"{option}={text}"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit_info:
            code = exit_info.code
    if code == 0:
        assert valid, (option, text)
    else:
        assert code == 2 and f"argument {option}:" in err.getvalue(), err.getvalue()
        if garbage == "":
            assert not valid, (option, text, err.getvalue())
