"""The shared label encoder (skpid._labels) and every entry point that reads labels."""

import numpy as np
import pytest

from skpid import PIDEstimator, pid, score_chunks, score_layers, score_representations
from skpid._labels import (check_label_array, encode_labels, fit_labels, format_labels,
                           label_kind, transform_labels)


def three_class_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    teacher = np.eye(3)[y] + 0.1 * rng.normal(size=(n, 3))
    student = rng.normal(size=(n, 3))
    return teacher, student, y


# -- the encoder ----------------------------------------------------------------------------
@pytest.mark.parametrize("y, classes, codes", [
    ([2, 0, 2], [0, 2], [1, 0, 1]),
    ([1, 1.0, True, 0], [0, 1], [1, 1, 1, 0]),             # equal numbers are one label
    (np.array(["b", "a"]), ["a", "b"], [1, 0]),
    ([b"y", b"x"], [b"x", b"y"], [1, 0]),
    ([True, False, True], [False, True], [1, 0, 1]),
    ([0.5, -1.5], [-1.5, 0.5], [1, 0]),
    ([("x", 1), ("x", 0)], [("x", 0), ("x", 1)], [1, 0]),  # tuples are labels, not rows
    (np.array([3, 1], dtype=object), [1, 3], [1, 0]),
    (np.array(["u", "t"], dtype=object), ["t", "u"], [1, 0]),
    ([2 ** 70, 1], [1, 2 ** 70], [1, 0]),
])
def test_encode_labels(y, classes, codes):
    got_classes, got_codes = encode_labels(y)
    assert got_classes.tolist() == classes and got_codes.tolist() == codes
    assert got_codes.dtype == np.int64


def test_unorderable_labels_in_order_of_first_appearance():
    a, b = object(), object()
    classes, codes = encode_labels([b, a, b])
    assert classes.tolist() == [b, a] and codes.tolist() == [0, 1, 0]
    assert transform_labels([a, b, object()], classes, unseen="extra").tolist() == [1, 0, 2]


def test_torch_tensors_of_every_dtype():
    torch = pytest.importorskip("torch")
    y = [0, 2, 1, 2]
    for dtype in (torch.bfloat16, torch.float16, torch.float32, torch.float64, torch.int8,
                  torch.uint8, torch.int32, torch.int64):
        tensor = torch.tensor(y, dtype=dtype, requires_grad=dtype.is_floating_point)
        classes, codes = encode_labels(tensor)
        assert classes.tolist() == [0, 1, 2] and codes.tolist() == [0, 2, 1, 2], dtype
    classes, codes = encode_labels(torch.tensor([True, False]))
    assert classes.tolist() == [False, True]


def test_pandas_series():
    pd = pytest.importorskip("pandas")
    assert encode_labels(pd.Series(["b", "a"], index=[10, 20]))[1].tolist() == [1, 0]
    assert encode_labels(pd.Series(pd.Categorical(["b", "a"])))[1].tolist() == [1, 0]
    for missing in (pd.Series([1, None], dtype="Int64"), pd.Series(["a", None]),
                    pd.Series(["a", pd.NA], dtype="string")):
        with pytest.raises(ValueError, match="y must not contain NaN, None or other missing"):
            encode_labels(missing)


@pytest.mark.parametrize("y, error, match", [
    (np.array([1, "a"], dtype=object), TypeError,
     r"y mixes labels of different types: number \(e.g. 1\) and str \(e.g. 'a'\)"),
    ([1, "1"], TypeError, "y mixes labels of different types"),  # numpy would make ['1', '1']
    (["a", b"a"], TypeError, "str .* and bytes"),
    ([1.0, np.nan], ValueError, r"y must not contain NaN.*got 1 at position\(s\) \[1\]"),
    (np.array([0, np.nan, np.nan], dtype=object), ValueError, r"got 2 at position\(s\) \[1, 2\]"),
    ([0, None], ValueError, "missing labels"),
    (np.array(["2020-01-01", "NaT"], dtype="datetime64[D]"), ValueError, "NaT"),
    ([1.0, np.inf], ValueError, "y must not contain infinite labels"),
    (np.array([1.0, -np.inf], dtype=object), ValueError, "infinite labels"),
    (np.zeros((4, 2)), ValueError, r"y must be 1-D \(one label per sample\); got shape \(4, 2\)"),
    (np.zeros((4, 1)), ValueError, r"got shape \(4, 1\)"),
    ([[0, 1], [1]], ValueError, "y must be a 1-D array-like of labels"),
    (5, TypeError, "y must be a 1-D array-like of labels .*; got int"),
    ({1, 2}, TypeError, "y must be a 1-D array-like of labels .*; got set"),
    ((v for v in [1, 2]), TypeError, "got generator"),
    (np.int64(3), ValueError, r"y must be 1-D .* got shape \(\)"),
    (np.array(3), ValueError, r"y must be 1-D .* got shape \(\)"),
    ("abc", TypeError, "y must be a 1-D array-like of labels; got str"),
    (None, TypeError, "y must be a 1-D array-like of labels; got NoneType"),
    (np.array([1 + 1j, 2]), ValueError, "Complex data not supported: y must hold"),
    (np.array([[1], [2]] + [None], dtype=object)[:2], TypeError, "hashable labels"),
])
def test_bad_labels_are_refused_by_name(y, error, match):
    with pytest.raises(error, match=match):
        encode_labels(y)
    with pytest.raises(error, match="target"):  # the argument's name, whatever it is
        check_label_array(y, "target")


def test_column_vector_only_where_allowed():
    from sklearn.exceptions import DataConversionWarning
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        assert check_label_array(np.zeros((3, 1)), allow_column=True).shape == (3,)


def test_fit_and_transform_pair():
    classes = fit_labels([3, 1])
    classes = fit_labels([2, 1], classes=classes)  # incremental, e.g. over chunks
    assert classes.tolist() == [1, 2, 3]
    assert transform_labels([3, 2, 1, 1.0], classes).tolist() == [2, 1, 0, 0]
    with pytest.raises(ValueError, match=r"y holds labels not seen in fit: \[7, 9\]; the "
                                         r"classes seen in fit are \[1, 2, 3\]"):
        transform_labels([7, 1, 9], classes)
    assert transform_labels([7, 1], classes, unseen="extra").tolist() == [3, 0]
    with pytest.raises(ValueError, match=r"y holds strings \(\['1'\]\), but the classes seen "
                                         r"in fit are numbers \(\[1, 2, 3\]\)"):
        transform_labels(["1"], classes)
    with pytest.raises(ValueError, match="the labels seen before are numbers"):
        fit_labels(["a"], classes=classes)
    with pytest.raises(ValueError, match="unseen must be"):
        transform_labels([1], classes, unseen="drop")


@pytest.mark.parametrize("y", [np.array([3, 1, 3, 7]), np.array(["dog", "cat", "eel"]),
                               np.array([True, False, True]), np.array([2.0, -1.0, 2.0])])
def test_fit_and_transform_are_a_label_encoder(y):
    # What a classifier needs: classes_ as scikit-learn's LabelEncoder finds them, y as
    # indices into them, and a ValueError naming y for labels not seen in fit.
    from sklearn.preprocessing import LabelEncoder
    encoder = LabelEncoder().fit(y)
    classes = fit_labels(y)
    np.testing.assert_array_equal(classes, encoder.classes_)
    np.testing.assert_array_equal(transform_labels(y[::-1], classes),
                                  encoder.transform(y[::-1]))
    with pytest.raises(ValueError, match=r"^y holds labels not seen in fit"):
        transform_labels(classes[:1], classes[1:])


def test_helpers():
    assert label_kind(np.array([1.5])) == "number" and label_kind(np.array(["a"])) == "str"
    assert label_kind(check_label_array([(1,), (2,)])) == "tuple"
    assert format_labels(np.arange(12)) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...]"
    assert format_labels(np.array(["b", "a", "b"])) == "['a', 'b']"


# -- every entry point (class 10 of issue 13) ------------------------------------------------
def entry_points():
    """name -> f(y) computing I(Y;T) bits through that entry point on fixed data."""
    T, S, y = three_class_data()
    X = np.hstack([T, S])

    def chunks(labels):
        def stream():
            for start in (0, 150):
                yield T[start:start + 150], S[start:start + 150], labels[start:start + 150]
        return stream

    return {
        "pid": lambda labels: pid(np.argmax(T, axis=1), (S[:, 0] > 0).astype(int),
                                  labels).mi_teacher,
        "PIDEstimator": lambda labels: PIDEstimator(n_clusters=3, random_state=0).fit(
            X, labels).mi_teacher_,
        "score_representations": lambda labels: score_representations(
            T, S, labels, n_clusters=3, random_state=0).mi_teacher,
        "score_layers": lambda labels: score_layers(
            [(T, S)], labels, n_clusters=3, random_state=0)[0].mi_teacher,
        "score_chunks": lambda labels: score_chunks(
            chunks(labels), n_clusters=3, sample_size=300, chunk_size=150,
            random_state=0).mi_teacher,
    }, y


@pytest.mark.parametrize("entry", ["pid", "PIDEstimator", "score_representations",
                                   "score_layers", "score_chunks"])
def test_every_entry_point_reads_labels_alike(entry):
    torch = pytest.importorskip("torch")
    fns, y = entry_points()
    fn = fns[entry]
    expected = fn(y)
    assert expected > 1.4
    names = np.array(["cat", "dog", "eel"])
    same = [y.tolist(), y.astype(float), names[y], names[y].astype(object), y + 10,
            torch.tensor(y, dtype=torch.bfloat16), torch.tensor(y, dtype=torch.float16),
            np.array(y.tolist(), dtype=object)]
    for labels in same:
        assert fn(labels) == pytest.approx(expected, abs=1e-9), type(labels)
    mixed = np.array([[1, "a", 2.5][v] for v in y], dtype=object)
    with pytest.raises(TypeError, match="y.* mixes labels of different types"):
        fn(mixed)
    with pytest.raises(TypeError, match="mixes labels"):
        fn([[1, "a", 2][v] for v in y])  # a list: numpy alone would make them strings
    for missing in (np.where(y == 0, np.nan, y), np.array([[1, 2, None][v] for v in y],
                                                          dtype=object),
                    np.array([[1, 2, np.nan][v] for v in y], dtype=object)):
        with pytest.raises(ValueError, match="y.* must not contain NaN, None or other missing"):
            fn(missing)
    with pytest.raises(ValueError, match="1-D"):
        fn(np.stack([y, y], axis=1))


def test_pid_refuses_missing_teacher_and_student_labels_by_name():
    with pytest.raises(ValueError, match="t must not contain NaN, None"):
        pid(np.array([0, None], dtype=object), [0, 1], [0, 1])
    with pytest.raises(TypeError, match="s mixes labels"):
        pid([0, 1], np.array([0, "a"], dtype=object), [0, 1])


# -- labels at score time (class 2 of issue 13) ----------------------------------------------
def fitted_estimator(labels):
    T, S, _ = three_class_data()
    return PIDEstimator(n_clusters=3, random_state=0).fit(np.hstack([T, S]), labels), \
        np.hstack([T, S])


@pytest.mark.parametrize("fit_as, score_as, given", [
    (lambda y: y, lambda y: y.astype(str), "strings"),
    (lambda y: np.array(["a", "b", "c"])[y], lambda y: y, "numbers"),
    (lambda y: y, lambda y: np.array([(v,) for v in y.tolist()] + [None],
                                     dtype=object)[:-1], "tuple values"),
])
def test_score_with_labels_of_another_type_names_both(fit_as, score_as, given):
    _, _, y = three_class_data()
    est, X = fitted_estimator(fit_as(y))
    with pytest.raises(ValueError, match=f"y holds {given} .* but the classes seen in fit "
                                         "are"):
        est.score(X, score_as(y))


def test_score_with_only_unseen_labels_is_an_error_and_some_a_warning():
    _, _, y = three_class_data()
    est, X = fitted_estimator(y)
    with pytest.raises(ValueError, match=r"y holds none of the classes seen in fit: got "
                                         r"\[10, 11, 12\], the classes seen in fit are "
                                         r"\[0, 1, 2\]"):
        est.score(X, y + 10)
    y_new = y.copy()
    y_new[:5] = 7
    with pytest.warns(UserWarning, match=r"y holds labels not seen in fit \(\[7\], 5 samples\)"):
        assert np.isfinite(est.score(X, y_new))
    # Labels equal as numbers are the same class, whatever their dtype.
    assert est.score(X, y.astype(float)) == pytest.approx(est.score(X, y))


def test_score_of_a_continuous_fit_needs_numbers():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.normal(size=60)
    est = PIDEstimator(measure="gaussian", n_components=1).fit(X, y)
    with pytest.raises(ValueError, match="y must be numbers: the estimator was fitted on a "
                                         "continuous target"):
        est.score(X, np.array(["a"] * 60))
