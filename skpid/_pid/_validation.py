"""Checks on user input with errors that name the argument and what was expected."""

import numbers

import numpy as np

MEASURES = ("broja", "mmi")
PMF_SUM_TOLERANCE = 1e-8


def check_measure(measure) -> str:
    if not isinstance(measure, str):
        raise TypeError(f"measure must be a str, one of {MEASURES}; got {type(measure).__name__}.")
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}; got {measure!r}.")
    return measure


def check_base(base) -> float:
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a real number > 0 and != 1; got {type(base).__name__}.")
    base = float(base)
    if not np.isfinite(base) or base <= 0 or base == 1:
        raise ValueError(f"base must be a finite number > 0 and != 1; got {base!r}.")
    return base


def check_table(table, name: str) -> np.ndarray:
    """A finite, non-negative 3-D array (T, S, Y) with positive total mass, as float64."""
    if isinstance(table, (str, bytes)) or table is None:
        raise TypeError(f"{name} must be a 3-D array-like of numbers; got {type(table).__name__}.")
    try:
        arr = np.asarray(table)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be a 3-D array of numbers: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must hold real numbers; got complex dtype {arr.dtype}.")
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 3-D with axes (teacher, student, target); "
                         f"got {arr.ndim}-D array of shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; it contains NaN or inf.")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative; smallest entry is {arr.min()!r}.")
    # The largest entry, not the total: a total of entries near the largest float
    # overflows (with a warning), though the table is valid.
    if not arr.max() > 0:
        raise ValueError(f"{name} must have positive total mass; all entries are zero.")
    return arr


def check_pmf(p) -> np.ndarray:
    arr = check_table(p, "p")
    with np.errstate(over="ignore"):  # entries near the largest float: inf, refused below
        total = arr.sum()
    if abs(total - 1.0) > PMF_SUM_TOLERANCE:
        raise ValueError(f"p must sum to 1 (within {PMF_SUM_TOLERANCE:g}); it sums to {total!r}. "
                         "Use pid_from_counts for unnormalised tables.")
    return arr / total


def check_labels(t, s, y) -> tuple:
    """Three 1-D label arrays of equal length >= 2."""
    arrays = []
    for name, values in (("t", t), ("s", s), ("y", y)):
        if isinstance(values, (str, bytes)) or values is None:
            raise TypeError(f"{name} must be a 1-D array-like of labels; "
                            f"got {type(values).__name__}.")
        arr = np.asarray(values)
        if (arr.ndim > 1 and not isinstance(values, np.ndarray)
                and all(isinstance(v, tuple) for v in values)):
            # A sequence of tuples is a sequence of hashable labels.
            arr = np.fromiter(values, dtype=object, count=len(values))
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one label per sample); got shape {arr.shape}.")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must not contain NaN or inf labels.")
        arrays.append(arr)
    lengths = {name: len(arr) for name, arr in zip("tsy", arrays)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"t, s and y must have the same length; got lengths {lengths}.")
    if lengths["t"] < 2:
        raise ValueError(f"t, s and y need at least 2 samples; got {lengths['t']}.")
    return tuple(arrays)


def check_tol(tol) -> float:
    """The solver tolerance: a finite real number > 0 (nats)."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a real number > 0 (nats); got {type(tol).__name__} "
                        f"{tol!r}.")
    tol = float(tol)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be a finite number > 0 (nats); got {tol!r}.")
    return tol


def check_max_iter(max_iter) -> int:
    """The iteration limit: an int >= 1 (at least one iterate is needed for a bound)."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral):
        raise TypeError(f"max_iter must be an int >= 1; got {type(max_iter).__name__} "
                        f"{max_iter!r}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1; got {max_iter!r}.")
    return int(max_iter)


def check_verbose(verbose) -> int:
    """The verbosity: an int >= 0 or a bool."""
    if not isinstance(verbose, numbers.Integral):  # bool is Integral: True means 1
        raise TypeError(f"verbose must be an int >= 0 or a bool; got "
                        f"{type(verbose).__name__} {verbose!r}.")
    if verbose < 0:
        raise ValueError(f"verbose must be an int >= 0 or a bool; got {verbose!r}.")
    return int(verbose)


def check_limit(value, name: str, unit: str):
    """A size limit: a real number > 0, or None for no limit (inf means the same)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number > 0 ({unit}) or None; got "
                        f"{type(value).__name__} {value!r}.")
    value = float(value)
    if np.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0 ({unit}) or None; got {value!r}.")
    return None if value == np.inf else value
