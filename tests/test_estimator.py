import pickle
import re
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skpid import PIDEstimator, QuantileDiscretizer, score_layers, score_representations
from skpid._sampling import QUANTITIES
from skpid.datasets import make_signal_nuisance


@pytest.fixture(scope="module")
def data():
    """Teacher (8 cols) knows y; student A (8 cols) knows y; student B is noise."""
    T, S, y = make_signal_nuisance(900, n_classes=3, random_state=0)
    rng = np.random.default_rng(0)
    return np.hstack([T, S, rng.normal(size=(900, 8))]), y


def fitted(X, y, **params):
    params = {"n_clusters": 3, "random_state": 0, **params}
    return PIDEstimator(**params).fit(X, y)


def test_fit_sets_atoms_and_identities(data):
    X, y = data
    est = fitted(X[:, :16], y)
    for name in QUANTITIES:
        assert getattr(est, name + "_") == getattr(est.result_, name)
    assert est.redundancy_ + est.unique_teacher_ == pytest.approx(est.mi_teacher_)
    assert est.redundancy_ == pytest.approx(np.log2(3), abs=0.01)
    np.testing.assert_array_equal(est.teacher_columns_, np.arange(8))   # first half
    np.testing.assert_array_equal(est.student_columns_, np.arange(8, 16))
    assert est.n_features_in_ == 16 and est.ci_ is None
    assert est.teacher_transformer_.n_clusters_ == 3


@pytest.mark.parametrize("student", [
    np.arange(8, 16), slice(8, 16), np.r_[np.zeros(8, bool), np.ones(8, bool),
                                          np.zeros(8, bool)],
    lambda X: np.arange(8, 16), list(range(8, 16)),
], ids=["indices", "slice", "mask", "callable", "list"])
def test_column_selections_are_equivalent(data, student):
    X, y = data
    est = fitted(X, y, teacher_columns=slice(0, 8), student_columns=student)
    np.testing.assert_array_equal(est.student_columns_, np.arange(8, 16))


def test_complement_and_names(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    df = pd.DataFrame(X[:, :16], columns=[f"t{i}" for i in range(8)]
                      + [f"s{i}" for i in range(8)])
    est = fitted(df, y, student_columns=[f"s{i}" for i in range(8)])
    np.testing.assert_array_equal(est.teacher_columns_, np.arange(8))
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    out = est.set_output(transform="pandas").transform(df)
    assert list(out.columns) == ["teacher_code", "student_code"]


def test_transform_gives_codes_of_both_blocks(data):
    X, y = data
    est = fitted(X[:, :16], y)
    codes = est.transform(X[:, :16])
    np.testing.assert_array_equal(codes[:, 0], est.teacher_transformer_.transform(X[:, :8])[:, 0])
    assert codes.shape == (900, 2) and codes.dtype.kind == "i"
    np.testing.assert_array_equal(est.get_feature_names_out(), ["teacher_code", "student_code"])


def test_gaussian_transform_and_names(data):
    X, y = data
    est = fitted(X[:, :16], y, measure="gaussian", n_components=2)
    assert est.transform(X[:5, :16]).shape == (5, 4)
    assert est.get_feature_names_out().tolist() == [
        "teacher_pc0", "teacher_pc1", "student_pc0", "student_pc1"]
    assert est.result_.measure == "gaussian-broja" and est.mi_teacher_ > 1


def test_score_is_out_of_sample_with_fitted_discretizers(data):
    X, y = data
    est = fitted(X[:600, :16], y[:600])
    assert est.score(X[:600, :16], y[:600]) == pytest.approx(est.redundancy_)
    before = est.teacher_transformer_.kmeans_.cluster_centers_.copy()
    held_out = est.score(X[600:, :16], y[600:])
    np.testing.assert_array_equal(before, est.teacher_transformer_.kmeans_.cluster_centers_)
    assert held_out == pytest.approx(np.log2(3), abs=0.05)
    neg = clone(est).set_params(scoring="neg_unique_teacher").fit(X[:600, :16], y[:600])
    assert neg.score(X[600:, :16], y[600:]) == pytest.approx(
        -score_representations(X[600:, :8], X[600:, 8:16], y[600:], n_clusters=3,
                               random_state=0).unique_teacher, abs=0.05)


def test_score_with_unseen_label(data):
    X, y = data
    est = fitted(X[:300, :16], y[:300])
    y_new = y[300:600].copy()
    y_new[:5] = 7  # never seen in fit: an extra class
    assert np.isfinite(est.score(X[300:600, :16], y_new))


def test_grid_search_picks_the_informative_student(data):
    X, y = data
    search = GridSearchCV(
        PIDEstimator(teacher_columns=np.arange(8), n_clusters=3, random_state=0),
        {"student_columns": [np.arange(16, 24), np.arange(8, 16)]}, cv=3)
    search.fit(X, y)
    np.testing.assert_array_equal(search.best_params_["student_columns"], np.arange(8, 16))
    scores = search.cv_results_["mean_test_score"]
    assert scores.max() > 1.4 and scores.min() < 0.1


def test_cross_val_score_and_pipeline(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), PIDEstimator(n_clusters=3, random_state=0))
    scores = cross_val_score(pipe, X[:, :16], y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 1.4)


def test_clone_pickle_joblib_round_trip(data, tmp_path):
    X, y = data
    est = fitted(X[:, :16], y, n_bootstrap=5)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X[:, :16]), est.transform(X[:, :16]))
    assert again.ci_ == est.ci_
    joblib.dump(est, tmp_path / "est.joblib")
    assert joblib.load(tmp_path / "est.joblib").score(X[:, :16], y) == est.score(X[:, :16], y)
    fresh = clone(est)
    assert not hasattr(fresh, "result_") and fresh.get_params() == est.get_params()


def test_fit_is_reproducible(data):
    X, y = data
    a = fitted(X[:, :16], y, n_clusters=5, n_bootstrap=4)
    b = fitted(X[:, :16], y, n_clusters=5, n_bootstrap=4)
    assert a.result_ == b.result_ and a.ci_ == b.ci_


def test_custom_and_quantile_discretizers(data):
    X, y = data
    est = fitted(X[:, :16], y, discretizer=QuantileDiscretizer(n_bins=3))
    assert isinstance(est.teacher_transformer_, QuantileDiscretizer)
    assert est.teacher_transformer_.random_state is not None
    q = fitted(X[:, :16], y, discretizer="quantile", n_components=1)
    assert q.teacher_transformer_.n_codes_ == 3


def test_passthrough_on_discrete_columns():
    from skpid import pid
    from skpid.datasets import make_teacher_student
    t, s, y = make_teacher_student(2000, random_state=0)
    est = PIDEstimator(discretizer="passthrough").fit(np.column_stack([t, s]), y)
    expected = pid(t, s, y)
    for name in QUANTITIES:
        assert getattr(est.result_, name) == pytest.approx(getattr(expected, name), abs=1e-9)


def test_score_representations_any_shape_and_ci():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    T = (2 * y - 1)[:, None, None, None] + 0.3 * rng.normal(size=(300, 2, 3, 3))
    S = rng.normal(size=(300, 5))
    r4 = score_representations(T, S, y, n_clusters=2, random_state=0, n_bootstrap=10)
    r2 = score_representations(T.reshape(300, -1), S, y, n_clusters=2, random_state=0,
                               n_bootstrap=10)
    assert r4 == r2 and r4.ci == r2.ci and r4.n_samples == 300
    assert r4.mi_teacher > 0.9 and r4.redundancy < 0.1


def test_score_layers_dict_and_list():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200)
    good = (2 * y - 1)[:, None] + 0.2 * rng.normal(size=(200, 3))
    noise = rng.normal(size=(200, 3))
    # Threads: the parallel path without paying for worker processes in the test.
    with joblib.parallel_config(backend="threading"):
        out = score_layers({"a": (good, good), "b": (good, noise)}, y, n_clusters=2,
                           random_state=0, n_jobs=2)
    assert list(out) == ["a", "b"] and out["a"].redundancy > 0.9 > out["b"].redundancy
    as_list = score_layers([(good, good)], y, n_clusters=2, random_state=0)
    assert as_list[0] == out["a"]
    with pytest.raises(ValueError, match=r"pairs\[0\] must be a \(teacher, student\) pair"):
        score_layers([good], y)


# -- bad input ---------------------------------------------------------------------------
def X_y(n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, 2, size=n)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_X(bad):
    X, y = X_y()
    X[0, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        PIDEstimator().fit(X, y)


def test_sparse_X():
    sp = pytest.importorskip("scipy.sparse")
    _, y = X_y()
    with pytest.raises(TypeError, match="[Ss]parse data was passed"):
        PIDEstimator().fit(sp.random(40, 4, density=0.5, format="csr"), y)
    with pytest.raises(TypeError, match="teacher is a sparse matrix"):
        score_representations(sp.random(40, 4, format="csr"), np.ones((40, 2)), y)


def test_mismatched_lengths():
    X, y = X_y()
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        PIDEstimator().fit(X, y[:-1])
    with pytest.raises(ValueError, match=re.escape("'teacher': 40, 'student': 39")):
        score_representations(X, X[:-1], y)


def test_one_sample():
    X, y = X_y()
    with pytest.raises(ValueError, match="1 sample"):
        PIDEstimator().fit(X[:1], y[:1])


def test_single_class_warns_and_gives_zero():
    X, _ = X_y()
    with pytest.warns(UserWarning, match="single class"):
        est = PIDEstimator(n_clusters=2, random_state=0).fit(X, np.zeros(40))
    assert est.mi_joint_ == 0 and est.redundancy_ == 0


def test_continuous_y_needs_gaussian():
    X, _ = X_y()
    y = np.random.default_rng(0).normal(size=40)
    with pytest.raises(ValueError, match="y is continuous"):
        PIDEstimator().fit(X, y)
    assert PIDEstimator(measure="gaussian", n_components=1).fit(X, y).classes_ is None


@pytest.mark.parametrize("params, match", [
    ({"teacher_columns": []}, "teacher_columns selects no columns"),
    ({"teacher_columns": slice(0, 4)}, "student_columns selects no columns"),
    ({"teacher_columns": [0, 9]}, "out of range"),
    ({"teacher_columns": np.ones(3, bool)}, "boolean mask must have length"),
    ({"teacher_columns": ["a"]}, "X has no feature names"),
    ({"measure": "foo"}, "measure must be one of"),
    ({"discretizer": "foo"}, "discretizer must be one of"),
    ({"scoring": "accuracy"}, "scoring must be one of"),
    ({"bias_correction": "jackknife"}, "bias_correction must be one of"),
    ({"confidence": 1.5}, "confidence must be a number in"),
    ({"n_bootstrap": -1}, "n_bootstrap must be an int >= 0"),
    ({"base": 1}, "base must be"),
])
def test_bad_parameters(params, match):
    X, y = X_y()
    with pytest.raises(ValueError, match=match):
        PIDEstimator(**params).fit(X, y)


def test_one_feature():
    X, y = X_y(d=1)
    with pytest.raises(ValueError, match="1 feature"):
        PIDEstimator().fit(X, y)


def test_overlapping_columns_warn():
    X, y = X_y()
    with pytest.warns(UserWarning, match="overlap in 1 column"):
        PIDEstimator(teacher_columns=[0, 1], student_columns=[1, 2], n_clusters=2).fit(X, y)


def test_constant_block_and_too_many_clusters_warn():
    X, y = X_y()
    X[:, :2] = 3.0
    with pytest.warns(UserWarning, match="teacher block: .*X is constant"):
        est = PIDEstimator(random_state=0).fit(X, y)
    assert est.mi_teacher_ == 0
    with pytest.warns(UserWarning, match="student block: n_clusters=50 is more than"):
        PIDEstimator(n_clusters=50, random_state=0).fit(X, y)


def test_wrong_dtype():
    X, y = X_y()
    with pytest.raises(TypeError, match="must hold real numbers"):
        score_representations(X.astype(str), X, y)


def test_readme_grid_search_example():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"<!-- gridsearch-example -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README lost its GridSearchCV example"
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example must run cleanly
        exec(block.group(1), namespace)
    assert namespace["search"].best_params_["student_columns"] == namespace["student_a"]


def test_torch_tensors_and_string_labels():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200)
    T = torch.tensor((2 * y - 1)[:, None, None] + 0.1 * rng.normal(size=(200, 2, 3)),
                     requires_grad=True)
    r = score_representations(T, T.detach() * 2, torch.tensor(y), n_clusters=2,
                              random_state=0)
    names = np.array(["cat", "dog"])[y]
    r_names = score_representations(T.detach().numpy(), 2 * T.detach().numpy(), names,
                                    n_clusters=2, random_state=0)
    assert r == r_names and r.redundancy == pytest.approx(r.entropy_y)


def test_large_code_values_are_compacted(data):
    from sklearn.preprocessing import FunctionTransformer
    X, y = data
    # A custom discretizer whose codes are huge numbers: the joint table must only
    # cover the codes that occur (else it would need ~1e19 cells).
    sparse_codes = FunctionTransformer(lambda Z: np.argmax(Z, axis=1)[:, None] * 10**9)
    est = fitted(X[:, :16], y, discretizer=sparse_codes)
    dense = fitted(X[:, :16], y, discretizer=FunctionTransformer(
        lambda Z: np.argmax(Z, axis=1)[:, None]))
    assert est.redundancy_ == pytest.approx(dense.redundancy_)
    assert est.score(X[:300, :16], y[:300]) == pytest.approx(dense.score(X[:300, :16], y[:300]))


# -- units of the activations (class 1 of issue 13) ------------------------------------------
def informative_pair(n=600, seed=0):
    """A teacher with I(Y;T) about 1.4 bits and a student that sees part of y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    teacher = np.eye(3)[y] @ rng.normal(size=(3, 6)) + 0.3 * rng.normal(size=(n, 6))
    student = rng.normal(size=(n, 6))
    student[:, 0] += y
    return teacher, student, y


# float32's normal range is about 1.2e-38 .. 3.4e38; float64's 2.2e-308 .. 1.8e308.
UNIT_SCALES = [(np.float64, [1e-300, 1e-30, 1e-6, 1e6, 1e20, 1e30, 1e300]),
               (np.float32, [1e-36, 1e-30, 1e-6, 1e6, 1e20, 1e30, 1e36])]


@pytest.mark.parametrize("measure, normalize", [("broja", True), ("broja", False),
                                                ("gaussian", True), ("gaussian", False)])
@pytest.mark.parametrize("dtype, scales", UNIT_SCALES, ids=["float64", "float32"])
def test_scores_do_not_depend_on_the_units(measure, normalize, dtype, scales):
    T, S, y = informative_pair()
    params = dict(n_clusters=3, measure=measure, normalize=normalize, random_state=0)

    def atoms(scale):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and no warning at any scale
            r = score_representations((T * scale).astype(dtype), (S * scale).astype(dtype),
                                      y, **params)
        return np.array([r.redundancy, r.unique_teacher, r.unique_student, r.synergy,
                         r.mi_teacher])

    reference = atoms(1.0)
    if measure == "broja":
        assert reference[-1] > 1.35  # the example: 0.38 bits at 1e-6 in float32
    # Same codes at every scale for the discrete measure; the Gaussian one works on
    # correlations, equal up to the dtype's round-off.
    tol = 0 if measure == "broja" else 1e-5 if dtype is np.float32 else 1e-10
    for scale in scales:
        np.testing.assert_allclose(atoms(scale), reference, rtol=0, atol=tol,
                                   err_msg=f"scale {scale:g}")


def test_zero_rows_share_one_code_at_every_scale():
    T, S, y = informative_pair()
    T[:20] = 0.0  # e.g. dead activations: no direction, hence one code, deterministically
    est = PIDEstimator(n_clusters=3, random_state=0).fit(np.hstack([T, S]), y)
    codes = est.transform(np.hstack([T, S]))[:, 0]
    assert len(set(codes[:20].tolist())) == 1
    for scale in (1e-30, 1e30):
        np.testing.assert_array_equal(est.transform(np.hstack([T, S]) * scale)[:, 0], codes)
        again = PIDEstimator(n_clusters=3, random_state=0).fit(np.hstack([T, S]) * scale, y)
        assert again.mi_teacher_ == est.mi_teacher_


def test_score_is_scale_invariant_out_of_sample():
    T, S, y = informative_pair()
    X = np.hstack([T, S]).astype(np.float32)
    est = PIDEstimator(n_clusters=3, random_state=0).fit(X[:400], y[:400])
    expected = est.score(X[400:], y[400:])
    tiny = PIDEstimator(n_clusters=3, random_state=0).fit(X[:400] * 1e-30, y[:400])
    assert tiny.score(X[400:] * 1e-30, y[400:]) == expected


# -- the Gaussian measure with few samples (class 9 of issue 13) ------------------------------
def noise(n, d=50, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.integers(0, n_classes, n)


def test_gaussian_refuses_fewer_samples_than_dimensions():
    T, S, y = noise(10)  # 5 + 5 components and 1 target column: 11 dimensions
    with pytest.raises(ValueError, match=r"measure='gaussian' needs more samples than "
                                         r"dimensions: got n_samples=10, but \(T, S, Y\) has "
                                         r"11 dimensions .*Use n_components <= 4"):
        score_representations(T, S, y, measure="gaussian", random_state=0)
    with pytest.warns(UserWarning, match="n_samples=10 and 5 dimensions"):
        est = PIDEstimator(measure="gaussian", n_components=2, random_state=0).fit(
            np.hstack([T, S]), y)
    with pytest.raises(ValueError, match="got n_samples=4, but"):  # and at score time
        est.score(np.hstack([T, S])[:4], y[:4])


def test_gaussian_warns_when_noise_alone_reports_much():
    T, S, y = noise(40, n_classes=3)
    with pytest.warns(UserWarning, match=r"n_samples=40 and 12 dimensions .* independent "
                                         r"data give I\(Y;T,S\) = 0\.\d+ bits on average"):
        r = score_representations(T, S, y, measure="gaussian", random_state=0)
    assert r.mi_joint > 0.3  # what the warning is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the correction removes that bias: no warning
        corrected = score_representations(T, S, y, measure="gaussian", random_state=0,
                                          bias_correction="permutation", n_permutations=10)
    assert corrected.mi_joint < r.mi_joint / 2
    T, S, y = noise(4000, d=10, n_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough samples: silent, and near 0
        big = score_representations(T, S, y, measure="gaussian", random_state=0)
    assert big.mi_joint < 0.02


def test_torch_activations_of_any_float_dtype():
    torch = pytest.importorskip("torch")
    from skpid import KMeansDiscretizer
    T, S, y = informative_pair(n=300)
    X = np.hstack([T, S])
    expected = PIDEstimator(n_clusters=3, random_state=0).fit(X.astype(np.float32), y)
    for dtype in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        tensor = torch.tensor(X, dtype=dtype, requires_grad=True)
        est = PIDEstimator(n_clusters=3, random_state=0).fit(tensor, torch.tensor(y))
        assert est.transform(tensor).shape == (300, 2)
        assert np.isfinite(est.score(tensor, y))
        assert KMeansDiscretizer(n_clusters=3).fit(tensor).transform(tensor).shape == (300, 1)
        r = score_representations(tensor[:, :6], tensor[:, 6:], y, n_clusters=3,
                                  random_state=0)
        if dtype in (torch.float32, torch.float64):  # (the others round the data)
            assert r.mi_teacher == pytest.approx(expected.mi_teacher_, abs=1e-9)
