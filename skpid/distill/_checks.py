"""Checks of the distiller's and the criteria's settings, shared by both.

A setting is checked by the same function wherever it arrives: as a parameter of
:class:`~skpid.PIDDistiller`, as ``method__*`` (routed to a criterion's constructor),
through ``set_params`` or a grid search, or in a criterion built directly. Every error
names the argument, what it got and what is expected; a value of the wrong kind (a
string for a number) is a ``TypeError``, a value of the right kind out of range
(negative, NaN, infinite) a ``ValueError``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_choice", "check_flag", "check_int", "check_real"]


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_real(value, name: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False,
               expected: str | None = None) -> float:
    """A finite real number in the interval given by ``low`` / ``high`` (closed unless
    ``low_open`` / ``high_open``); NaN and infinities are always refused. ``expected``
    replaces the description of the interval in the message.

    Examples
    --------
    >>> check_real(0.5, "teacher_ratio", low=0, high=1, low_open=True, high_open=True)
    0.5
    >>> check_real(float("nan"), "lr", low=0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number >= 0; got nan.
    """
    if expected is None:
        expected = "a finite number" + _interval(low, high, low_open, high_open)
    if not _is_real(value):
        raise TypeError(f"{name} must be {expected}; got {_describe(value)}.")
    # ``not low < value`` rather than ``value <= low``: NaN fails every comparison, and
    # must fail the check too (it is also refused by isfinite first).
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = low < value if low_open else low <= value
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be {expected}; got {value!r}.")
    return float(value)


def check_int(value, name: str, *, low: int = 1) -> int:
    """An integer (Python or numpy, not bool) ``>= low``.

    Examples
    --------
    >>> check_int(3, "rounds")
    3
    >>> check_int(0, "method__rounds")
    Traceback (most recent call last):
    ...
    ValueError: method__rounds must be an integer >= 1; got 0.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value >= low:
            return int(value)
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    if _is_real(value):  # 2.5, nan, inf: a number, but not a whole one
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    raise TypeError(f"{name} must be an integer >= {low}; got {_describe(value)}.")


def check_choice(value, name: str, choices) -> str:
    """One of ``choices`` (strings).

    Examples
    --------
    >>> check_choice("log", "variance_penalty", ("log", "square"))
    'log'
    """
    if not isinstance(value, str) or value not in choices:
        names = [repr(c) for c in choices]
        expected = (", ".join(names[:-1]) + " or " + names[-1]) if len(names) > 1 else names[0]
        raise ValueError(f"{name} must be {expected}; got {_describe(value)}.")
    return value


def check_flag(value, name: str) -> bool:
    """A bool (Python or numpy)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {_describe(value)}.")


def _interval(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f" in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def _describe(value) -> str:
    """Short ``repr`` of a value of the wrong kind, with its type (``'4' (str)``: the
    repr alone does not say that a string was given for a number)."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"
