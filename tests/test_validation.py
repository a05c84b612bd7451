"""Bad input gets a clear error naming the argument."""

import numpy as np
import pytest

from skpid import pid, pid_from_counts, pid_from_pmf

GOOD = np.full((2, 2, 2), 0.125)


@pytest.mark.parametrize("p,error,match", [
    (-GOOD, ValueError, "p must be non-negative"),
    (np.where(np.eye(2, dtype=bool)[:, :, None], np.nan, GOOD), ValueError, "p must be finite"),
    (np.where(np.eye(2, dtype=bool)[:, :, None], np.inf, GOOD), ValueError, "p must be finite"),
    (GOOD[0], ValueError, r"p must be 3-D"),
    (GOOD[None], ValueError, r"p must be 3-D"),
    (np.zeros((0, 2, 2)), ValueError, "p must not be empty"),
    (np.zeros((2, 2, 2)), ValueError, "p must have positive total mass"),
    (GOOD * 2, ValueError, "p must sum to 1.*pid_from_counts"),
    (GOOD * (1 + 1e-6), ValueError, "p must sum to 1"),
    ("abc", TypeError, "p must be a 3-D array-like"),
    (None, TypeError, "p must be a 3-D array-like"),
    (np.full((2, 2, 2), "x"), TypeError, "p must hold real numbers"),
    (GOOD.astype(complex), TypeError, "p must hold real numbers"),
    ([[[0.5, 0.5]], [[0.0]]], ValueError, "p must be a 3-D array"),
])
def test_bad_pmf(p, error, match):
    with pytest.raises(error, match=match):
        pid_from_pmf(p)


def test_pmf_sum_tolerance_accepts_round_off():
    pid_from_pmf(GOOD * (1 + 1e-10))


@pytest.mark.parametrize("counts,match", [
    (-np.ones((2, 2, 2)), "counts must be non-negative"),
    (np.zeros((2, 2, 2)), "counts must have positive total mass"),
    (np.ones((2, 2)), "counts must be 3-D"),
])
def test_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        pid_from_counts(counts)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"measure": "williams-beer"}, ValueError, "measure must be one of"),
    ({"measure": 3}, TypeError, "measure must be a str"),
    ({"base": 0}, ValueError, "base must be"),
    ({"base": -2}, ValueError, "base must be"),
    ({"base": 1}, ValueError, "base must be"),
    ({"base": np.nan}, ValueError, "base must be"),
    ({"base": "2"}, TypeError, "base must be a real number"),
    ({"base": True}, TypeError, "base must be a real number"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        pid_from_pmf(GOOD, **kwargs)
    with pytest.raises(error, match=match):
        pid([0, 1], [0, 1], [0, 1], **kwargs)


@pytest.mark.parametrize("t,s,y,error,match", [
    ([0, 1, 0], [0, 1], [0, 1, 1], ValueError, "same length"),
    ([0], [0], [0], ValueError, "at least 2 samples"),
    ([], [], [], ValueError, "at least 2 samples"),
    ([[0, 1], [1, 0]], [0, 1], [0, 1], ValueError, "t must be 1-D"),
    ([0, 1], [0.0, np.nan], [0, 1], ValueError, "s must not contain NaN"),
    ("ab", [0, 1], [0, 1], TypeError, "t must be a 1-D array-like"),
    ([0, 1], [0, 1], None, TypeError, "y must be a 1-D array-like"),
])
def test_bad_labels(t, s, y, error, match):
    with pytest.raises(error, match=match):
        pid(t, s, y)
