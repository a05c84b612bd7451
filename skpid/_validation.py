"""Checks on user input, in one style for every entry point of the PID and its estimators.

Each check names the argument, says what was expected and what it got.  As in
scikit-learn, a value of the wrong kind (a string for a number, a float for a count, a
number for a name) is a ``TypeError``; a value of the right kind that is out of range
(negative, NaN, infinite) or not among the choices is a ``ValueError``.  The scalar checks
return the value converted (``float`` or ``int``), so that numpy scalars and Python
numbers behave alike afterwards.
"""

import numbers

import numpy as np

# The measures of a discrete joint distribution (``pid``, ``pid_from_counts``,
# ``pid_from_pmf``, ``score_chunks``), also offered for a Gaussian covariance
# (``gaussian_pid``).
PID_MEASURES = ("broja", "mmi")
# The measures of PIDEstimator / score_representations: the discrete ones on the codes
# of each block, or the Gaussian measure on principal components.
MEASURES = PID_MEASURES + ("gaussian",)
PMF_SUM_TOLERANCE = 1e-8
# Longest repr of a rejected value quoted in a message.
_SHOWN_CHARS = 60


def _got(value) -> str:
    """A value of the wrong kind for a message: its type, then its (short) repr, since
    ``'4'`` alone does not say that a string was given for a number."""
    text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS - 3] + "..."
    return f"{type(value).__name__} {text}"


def check_int(value, name: str, *, minimum: int = 1, expected: str | None = None,
              allow_bool: bool = False) -> int:
    """An integer (Python or numpy) ``>= minimum``, as an ``int``.

    Parameters
    ----------
    value : object
    name : str
        The argument's name, used in error messages.
    minimum : int, default=1
    expected : str or None, default=None
        What the message says is expected; default ``"an int >= {minimum}"``.
    allow_bool : bool, default=False
        Accept ``True`` / ``False`` (as 1 / 0), e.g. for a verbosity.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``value`` is not an integer (floats, strings; bools unless ``allow_bool``).
    ValueError
        If ``value < minimum``.

    Examples
    --------
    >>> check_int(3, "n_clusters")
    3
    >>> check_int(2.5, "n_clusters")
    Traceback (most recent call last):
    ...
    TypeError: n_clusters must be an int >= 1; got float 2.5.
    """
    expected = expected or f"an int >= {minimum}"
    if not isinstance(value, numbers.Integral) or (isinstance(value, bool) and not allow_bool):
        raise TypeError(f"{name} must be {expected}; got {_got(value)}.")
    if value < minimum:
        raise ValueError(f"{name} must be {expected}; got {value!r}.")
    return int(value)


def check_real(value, name: str, expected: str | None = None, *, valid=None,
               low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False,
               type_expected: str | None = None) -> float:
    """A real number (Python or numpy, not bool) for which ``valid`` holds, as a ``float``.

    Parameters
    ----------
    value : object
    name : str
        The argument's name, used in error messages.
    expected : str or None, default=None
        What the message says is expected, e.g. ``"a finite number > 0 (nats)"``;
        default: "a finite number" and the interval of ``low`` / ``high``.
    valid : callable or None, default=None
        ``valid(float(value))`` is true for acceptable values.  Write it with comparisons
        that NaN fails (``v > 0``, not ``not v <= 0``), so that NaN is refused.  Default:
        finite and within ``low`` / ``high``.
    low, high : float or None, default=None
        Bounds of the interval (used when ``valid`` is None), closed unless
        ``low_open`` / ``high_open``.
    type_expected : str or None, default=None
        What the message of a ``TypeError`` says is expected (default ``expected``):
        e.g. "a real number > 0" where the ``ValueError`` adds "finite".

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a real number (strings, None, bools, complex numbers).
    ValueError
        If ``valid`` does not hold.

    Examples
    --------
    >>> check_real(0.9, "confidence", "a number in (0, 1)", valid=lambda v: 0 < v < 1)
    0.9
    >>> check_real(float("nan"), "confidence", "a number in (0, 1)",
    ...            valid=lambda v: 0 < v < 1)
    Traceback (most recent call last):
    ...
    ValueError: confidence must be a number in (0, 1); got nan.
    >>> check_real(-1, "lr", low=0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number >= 0; got -1.0.
    """
    if expected is None:
        expected = "a finite number" + _interval(low, high, low_open, high_open)
    if valid is None:
        def valid(v):
            # comparisons that NaN fails
            return (np.isfinite(v)
                    and (low is None or (low < v if low_open else low <= v))
                    and (high is None or (v < high if high_open else v <= high)))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {type_expected or expected}; got {_got(value)}.")
    value = float(value)
    if not valid(value):
        raise ValueError(f"{name} must be {expected}; got {value!r}.")
    return value


def _interval(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f" in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_flag(value, name: str) -> bool:
    """A bool (Python or numpy), as a ``bool``.

    Examples
    --------
    >>> check_flag("yes", "normalize")
    Traceback (most recent call last):
    ...
    TypeError: normalize must be True or False; got str 'yes'.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {_got(value)}.")


def check_choice(value, name: str, choices: tuple, *, alternative: str | None = None):
    """One of ``choices`` (strings, and possibly None).

    Parameters
    ----------
    value : object
    name : str
        The argument's name, used in error messages.
    choices : tuple
        The accepted values, e.g. ``MEASURES``.
    alternative : str or None, default=None
        Something else the caller accepts, checked by the caller, that the message should
        mention (e.g. ``"a transformer"``).

    Returns
    -------
    object
        ``value``.

    Raises
    ------
    TypeError
        If ``value`` is of another type than the choices (e.g. a number for a name).
    ValueError
        If ``value`` is not among the choices.

    Examples
    --------
    >>> check_choice("mmi", "measure", PID_MEASURES)
    'mmi'
    >>> check_choice("gauss", "measure", MEASURES)
    Traceback (most recent call last):
    ...
    ValueError: measure must be one of ('broja', 'mmi', 'gaussian'); got 'gauss'.
    """
    expected = f"one of {choices}" + (f" or {alternative}" if alternative else "")
    kinds = tuple({type(choice) for choice in choices})
    if not isinstance(value, kinds):
        kind = " or ".join("None" if k is type(None) else f"a {k.__name__}"
                           for k in sorted(kinds, key=lambda k: k is not type(None)))
        raise TypeError(f"{name} must be {kind}, {expected}; got {_got(value)}.")
    if value not in choices:
        raise ValueError(f"{name} must be {expected}; got {value!r}.")
    return value


def check_base(base) -> float:
    """A logarithm base: a finite number > 0 and != 1."""
    return check_real(base, "base", "a finite number > 0 and != 1",
                      valid=lambda v: np.isfinite(v) and v > 0 and v != 1,
                      type_expected="a real number > 0 and != 1")


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


def check_paired(lengths: dict) -> None:
    """Paired label arrays (``{name: length}``) of one length, with at least 2 samples.

    The arrays themselves are checked by the label encoder (``skpid._labels``).
    """
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{', '.join(list(lengths)[:-1])} and {list(lengths)[-1]} must "
                         f"have the same length; got lengths {lengths}.")
    n = next(iter(lengths.values()))
    if n < 2:
        raise ValueError(f"{', '.join(list(lengths)[:-1])} and {list(lengths)[-1]} need at "
                         f"least 2 samples; got {n}.")


def check_tol(tol) -> float:
    """The solver tolerance: a finite real number > 0 (nats)."""
    return check_real(tol, "tol", "a finite number > 0 (nats)",
                      valid=lambda v: np.isfinite(v) and v > 0,
                      type_expected="a real number > 0 (nats)")


def check_max_iter(max_iter) -> int:
    """The iteration limit: an int >= 1 (at least one iterate is needed for a bound)."""
    return check_int(max_iter, "max_iter")


def check_verbose(verbose) -> int:
    """The verbosity: an int >= 0 or a bool (True means 1)."""
    return check_int(verbose, "verbose", minimum=0, expected="an int >= 0 or a bool",
                     allow_bool=True)


def check_limit(value, name: str, unit: str):
    """A size limit: a number > 0, or None for no limit (inf means the same)."""
    if value is None:
        return None
    value = check_real(value, name, f"a number > 0 ({unit}) or None", valid=lambda v: v > 0)
    return None if value == np.inf else value
