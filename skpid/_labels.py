"""One label encoder for every entry point that takes class labels.

``pid``, :class:`~skpid.PIDEstimator`, ``score_representations`` / ``score_layers``,
``score_chunks`` and the command line all read labels through these functions, so that a
label array means the same thing everywhere:

* Accepted containers: numpy arrays, lists and tuples, pandas Series (``to_numpy``) and
  torch tensors of any dtype on any device (low-precision floats such as bfloat16 and
  float16, which numpy cannot receive directly, are widened to float32 first: exact).
* Accepted labels: numbers (bool, int, float, numpy scalars: equal values are one label,
  so ``1``, ``1.0`` and ``True`` coincide as in Python and numpy), strings, bytes, and
  other hashable values of one type (tuples, enums, plain objects).
* Refused, with an error naming the argument: missing labels (NaN, None, ``pd.NA``,
  NaT), infinite ones, complex numbers and arrays that are not 1-D (``ValueError``);
  labels of several types in one array, e.g. ``[1, "1"]`` (``TypeError``: whether ``1``
  and ``"1"`` are one class or two is a guess, and either guess silently changes every
  information value).

Classes are the distinct labels in sorted order (as ``np.unique`` gives them), or in
order of first appearance for values of a type that cannot be sorted.  The pair
:func:`fit_labels` / :func:`transform_labels` is a functional ``LabelEncoder``: fit the
classes once, then encode any later array against them, with an error (or an extra code)
for labels not seen and a ``ValueError`` for labels of another type than the classes.
"""

import numbers
import warnings

import numpy as np

from ._validation import check_choice

# Element types of object arrays, grouped so that values that compare equal in Python
# (1 == 1.0 == True) share a group.
NUMBER, STRING, BYTES = "number", "str", "bytes"
_DTYPE_KINDS = {"b": NUMBER, "i": NUMBER, "u": NUMBER, "f": NUMBER, "U": STRING,
                "S": BYTES, "M": "datetime64", "m": "timedelta64"}
# At most this many labels are quoted in a message.
_SHOWN = 10


def _element_kind(value) -> str:
    if isinstance(value, (bool, np.bool_, numbers.Real)):
        return NUMBER
    if isinstance(value, numbers.Complex):
        return "complex"
    if isinstance(value, str):
        return STRING
    if isinstance(value, bytes):
        return BYTES
    return type(value).__name__


def _is_missing(value) -> bool:
    """None, float NaN, pandas' NA and NaT: a sample without a label."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(value))
    # pandas.NA and pandas.NaT, recognised without importing pandas.
    return type(value).__name__ in ("NAType", "NaTType")


def _shown(values) -> list:
    """At most ``_SHOWN`` values as Python objects, for messages."""
    return [v.item() if isinstance(v, np.generic) else v for v in list(values)[:_SHOWN]]


def format_labels(values) -> str:
    """The distinct labels of ``values`` for a message: ``[0, 1, 2]``, at most ten."""
    distinct = _unique(np.asarray(values))[0] if len(values) else []
    more = ", ..." if len(distinct) > _SHOWN else ""
    return "[" + ", ".join(repr(v) for v in _shown(distinct)) + more + "]"


def _to_numpy(y, name: str) -> np.ndarray:
    """``y`` as a numpy array, before any check of its contents."""
    if y is None or isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D array-like of labels; got {type(y).__name__}.")
    if hasattr(y, "tocsr"):
        raise TypeError(f"{name} must be a dense 1-D array-like of labels; got a sparse "
                        "matrix.")
    if hasattr(y, "detach") and hasattr(y, "cpu"):  # torch.Tensor, on any device
        tensor = y.detach().cpu()
        if tensor.is_complex():
            raise ValueError(f"Complex data not supported: {name} must hold class labels "
                             f"(numbers or strings); got a complex tensor ({tensor.dtype}).")
        # numpy has no bfloat16 (and torch's float8 types have no numpy twin): widen
        # them to float32, which holds every value exactly.
        if tensor.is_floating_point() and tensor.element_size() < 4:
            tensor = tensor.float()
        return tensor.numpy()
    if not isinstance(y, np.ndarray) and hasattr(y, "to_numpy"):  # pandas Series
        return y.to_numpy()
    if isinstance(y, np.ndarray):
        return y
    if hasattr(y, "__array__") or hasattr(y, "__array_interface__"):  # array protocol
        return np.asarray(y)
    if isinstance(y, (set, frozenset, dict)) or not hasattr(y, "__len__"):
        # Scalars, and containers without an order (sets) or a length (generators): the
        # order of the samples would be lost or a guess.
        raise TypeError(f"{name} must be a 1-D array-like of labels (array, list, tuple, "
                        f"pandas Series or torch tensor); got {type(y).__name__}.")
    values = list(y)
    if values and all(isinstance(v, tuple) for v in values):
        # A sequence of tuples is a sequence of hashable labels, not a 2-D array.
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be a 1-D array-like of labels: {exc}") from None
    text = str if arr.dtype.kind == "U" else bytes
    if arr.dtype.kind in "US" and not all(isinstance(v, text) for v in values):
        # numpy turns [1, "a"] into the strings ["1", "a"]; keep the values as given so
        # that the mix is seen (and refused) instead of silently merged.
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
    return arr


def check_label_array(y, name: str = "y", *, allow_column: bool = False) -> np.ndarray:
    """``y`` as a validated 1-D numpy array of labels of one type.

    Parameters
    ----------
    y : array-like, pandas Series or torch.Tensor of shape (n_samples,)
    name : str, default="y"
        The argument's name, used in error messages.
    allow_column : bool, default=False
        Accept a column vector of shape ``(n_samples, 1)`` with scikit-learn's
        ``DataConversionWarning`` (as its estimators do), and ravel it.

    Returns
    -------
    ndarray of shape (n_samples,)
        A numeric array for numbers, a str (or bytes) array for strings, an object array
        for other hashable values.

    Raises
    ------
    TypeError
        For containers that are no label arrays, or labels of several types.
    ValueError
        For missing, infinite or complex labels, or a shape other than 1-D.
    """
    arr = _to_numpy(y, name)
    if allow_column and arr.ndim == 2 and arr.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning
        warnings.warn(f"A column-vector {name} was passed when a 1d array was expected. "
                      f"Please change the shape of {name} to (n_samples,), for example "
                      "using ravel().", DataConversionWarning, stacklevel=3)
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample); got shape "
                         f"{arr.shape}.")
    kind = arr.dtype.kind
    if kind == "O":
        arr = _check_objects(arr, name)
        kind = arr.dtype.kind
    if kind == "c":
        # ValueError with scikit-learn's wording, as its estimators answer complex input.
        raise ValueError(f"Complex data not supported: {name} must hold class labels "
                         f"(numbers or strings); got complex dtype {arr.dtype}.")
    if kind == "V":
        raise TypeError(f"{name} must hold class labels (numbers or strings); got "
                        f"structured dtype {arr.dtype}.")
    if kind == "f":
        _refuse_positions(name, np.isnan(arr), "NaN, None or other missing labels")
        _refuse_positions(name, np.isinf(arr), "infinite labels")
    elif kind in "Mm":
        _refuse_positions(name, np.isnat(arr), "NaN, None or other missing labels (NaT)")
    return arr


def _refuse_positions(name: str, bad: np.ndarray, what: str) -> None:
    if bad.any():
        where = np.flatnonzero(bad)
        raise ValueError(f"{name} must not contain {what}; got {len(where)} at position(s) "
                         f"{where[:_SHOWN].tolist()}.  Every sample needs a class label: "
                         "drop or relabel those samples.")


def _check_objects(arr: np.ndarray, name: str) -> np.ndarray:
    """An object array checked for missing values and mixed types, and converted to a
    numeric or string array when all its values are numbers or strings."""
    values = arr.tolist()
    _refuse_positions(name, np.fromiter((_is_missing(v) for v in values), bool,
                                        count=len(values)),
                      "NaN, None or other missing labels")
    kinds = {}
    for v in values:
        kinds.setdefault(_element_kind(v), v)
    if len(kinds) > 1:
        (k1, v1), (k2, v2) = list(kinds.items())[:2]
        raise TypeError(f"{name} mixes labels of different types: {k1} (e.g. {v1!r}) and "
                        f"{k2} (e.g. {v2!r}); all labels must be numbers, all strings, or "
                        "all of one other type.  Convert them to one type first (e.g. "
                        f"{name}.astype(str) or {name}.astype(int)).")
    kind = next(iter(kinds), None)
    if kind in (NUMBER, STRING, BYTES):
        try:
            converted = np.asarray(values)
        except OverflowError:  # Python ints beyond 64 bits: keep them as objects
            converted = arr
        if converted.dtype.kind in "biufUS":
            if converted.dtype.kind == "f":
                _refuse_positions(name, np.isinf(converted), "infinite labels")
            return converted
    if kind == "complex":
        raise ValueError(f"Complex data not supported: {name} must hold class labels "
                         "(numbers or strings); got complex numbers.")
    if kind is not None:
        try:
            hash(kinds[kind])
        except TypeError:
            raise TypeError(f"{name} must hold hashable labels (numbers, strings, tuples); "
                            f"got {kind} values such as {kinds[kind]!r}.") from None
    return arr


def label_kind(labels: np.ndarray) -> str:
    """The type of the labels of a checked array: ``"number"``, ``"str"``, ``"bytes"``,
    ``"datetime64"``, ``"timedelta64"`` or, for object arrays, the values' type name."""
    if labels.dtype.kind == "O":
        return _element_kind(labels[0]) if len(labels) else "object"
    return _DTYPE_KINDS.get(labels.dtype.kind, labels.dtype.name)


def _describe(kind: str) -> str:
    return {NUMBER: "numbers", STRING: "strings", BYTES: "bytes"}.get(kind, f"{kind} values")


def _unique(arr: np.ndarray) -> tuple:
    """Distinct labels (sorted, else in order of first appearance) and the codes of ``arr``."""
    try:
        classes, codes = np.unique(arr, return_inverse=True)
        return classes, codes.ravel().astype(np.int64)
    except TypeError:  # values of one type that cannot be ordered (plain objects)
        index = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in arr.tolist()),
                            np.int64, count=len(arr))
        classes = np.empty(len(index), dtype=object)
        classes[:] = list(index)
        return classes, codes


def _check_same_kind(labels: np.ndarray, classes: np.ndarray, name: str,
                     what: str) -> None:
    if not len(labels) or not len(classes):
        return
    given, known = label_kind(labels), label_kind(classes)
    if given != known:
        raise ValueError(f"{name} holds {_describe(given)} ({format_labels(labels)}), but "
                         f"{what} are {_describe(known)} ({format_labels(classes)}); "
                         "pass labels of the type used there.")


def fit_labels(y, name: str = "y", *, classes=None) -> np.ndarray:
    """The classes of ``y``: its distinct labels, merged with ``classes`` when given.

    ``classes`` (from an earlier call) makes this incremental, e.g. over the chunks of a
    stream; the labels must then be of the type of those classes.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels; see :func:`check_label_array` for what is accepted.
    name : str, default="y"
        The argument's name, used in error messages.
    classes : ndarray or None, default=None
        Classes seen before.

    Returns
    -------
    classes : ndarray
        Sorted distinct labels (order of first appearance for unorderable values).
    """
    labels = check_label_array(y, name)
    found = _unique(labels)[0]
    if classes is None or not len(classes):
        return found
    _check_same_kind(labels, classes, name, "the labels seen before")
    return _unique(np.concatenate([classes, found]))[0]


def transform_labels(y, classes: np.ndarray, name: str = "y", *,
                     unseen: str = "error") -> np.ndarray:
    """Codes of the labels of ``y`` in ``classes`` (from :func:`fit_labels`).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    classes : ndarray
        The fitted classes.
    name : str, default="y"
        The argument's name, used in error messages.
    unseen : {"error", "extra"}, default="error"
        Labels not in ``classes``: a ``ValueError`` listing them, or the extra code
        ``len(classes)``.

    Returns
    -------
    codes : ndarray of shape (n_samples,), dtype int64

    Raises
    ------
    ValueError
        When ``y`` holds labels of another type than ``classes`` (e.g. strings against
        integer classes), or unseen labels with ``unseen="error"``.
    """
    check_choice(unseen, "unseen", ("error", "extra"))
    labels = check_label_array(y, name)
    classes = np.asarray(classes)
    _check_same_kind(labels, classes, name, "the classes seen in fit")
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    if labels.dtype.kind == "O" or classes.dtype.kind == "O":
        index = {c: i for i, c in enumerate(classes.tolist())}
        codes = np.fromiter((index.get(v, len(classes)) for v in labels.tolist()),
                            np.int64, count=len(labels))
    else:  # sorted classes: one vectorised search
        pos = np.minimum(np.searchsorted(classes, labels), len(classes) - 1)
        codes = np.where(classes[pos] == labels, pos, len(classes)).astype(np.int64)
    if unseen == "error" and np.any(codes == len(classes)):
        new = labels[codes == len(classes)]
        raise ValueError(f"{name} holds labels not seen in fit: {format_labels(new)}; the "
                         f"classes seen in fit are {format_labels(classes)}.")
    return codes


def encode_labels(y, name: str = "y") -> tuple:
    """``(classes, codes)``: the distinct labels of ``y`` and the code of every sample.

    ``classes[codes]`` gives the labels back (as checked by :func:`check_label_array`).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    name : str, default="y"
        The argument's name, used in error messages.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
    codes : ndarray of shape (n_samples,), dtype int64

    Examples
    --------
    >>> from skpid._labels import encode_labels, transform_labels
    >>> classes, codes = encode_labels(["b", "a", "b"])
    >>> classes.tolist(), codes.tolist()
    (['a', 'b'], [1, 0, 1])
    >>> transform_labels(["a", "c"], classes, unseen="extra").tolist()
    [0, 2]
    """
    return _unique(check_label_array(y, name))


def is_continuous(labels: np.ndarray) -> bool:
    """Whether a checked label array holds non-integral floats (a continuous target)."""
    return labels.dtype.kind == "f" and bool(np.any(labels != np.round(labels)))
