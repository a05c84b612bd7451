"""One style of parameter checks on every estimator-side entry point: a value of the wrong
kind is a TypeError, a value of the right kind out of range a ValueError, and both name
the parameter, in the same words wherever it is checked."""

import argparse

import numpy as np
import pytest

from skpid import (ChunkedKMeansDiscretizer, KMeansDiscretizer, PIDEstimator,
                   QuantileDiscretizer, pid, pid_from_counts, score_chunks,
                   score_representations)
from skpid._cli_score import add_score_command
from skpid._estimator import MEASURES
from skpid._validation import PID_MEASURES, check_choice, check_int, check_real

rng = np.random.default_rng(0)
X, Y = rng.normal(size=(40, 4)), np.arange(40) % 2

ENTRY_POINTS = {
    "PIDEstimator": lambda **kw: PIDEstimator(**kw).fit(X, Y),
    "score_representations": lambda **kw: score_representations(X[:, :2], X[:, 2:], Y, **kw),
    "score_chunks": lambda **kw: score_chunks((X[:, :2], X[:, 2:], Y), **kw),
    "KMeansDiscretizer": lambda **kw: KMeansDiscretizer(**kw).fit(X),
    "ChunkedKMeansDiscretizer": lambda **kw: ChunkedKMeansDiscretizer(**kw).fit(X),
    "QuantileDiscretizer": lambda **kw: QuantileDiscretizer(**kw).fit(X),
    "pid": lambda **kw: pid([0, 1], [0, 1], [0, 1], **kw),
    "pid_from_counts": lambda **kw: pid_from_counts(np.ones((2, 2, 2)), **kw),
}
# parameter -> (a value of the wrong kind, one out of range, the message of both)
PARAMETERS = {
    "n_clusters": (2.5, 0, "n_clusters must be an int >= 1; got "),
    "n_components": ("2", 0, "n_components must be an int >= 1; got "),
    "measure": (3, "gauss", "measure must be "),
    "base": ("2", 1, "base must be a (real|finite) number > 0 and != 1; got "),
    "chunk_size": (1.0, 0, "chunk_size must be an int >= 1; got "),
    "n_bootstrap": (0.5, -1, "n_bootstrap must be an int >= 0; got "),
    "confidence": ("0.9", 1.5, r"confidence must be a number in \(0, 1\); got "),
}
ACCEPTS = {
    "PIDEstimator": ["n_clusters", "n_components", "measure", "base", "n_bootstrap",
                     "confidence"],
    "score_representations": ["n_clusters", "n_components", "measure", "base",
                              "n_bootstrap", "confidence"],
    "score_chunks": ["n_clusters", "n_components", "measure", "base", "chunk_size"],
    "KMeansDiscretizer": ["n_clusters", "n_components"],
    "ChunkedKMeansDiscretizer": ["n_clusters", "n_components", "chunk_size"],
    "QuantileDiscretizer": ["n_components"],
    "pid": ["measure", "base"],
    "pid_from_counts": ["measure", "base"],
}
CASES = [(entry, name) for entry, names in ACCEPTS.items() for name in names]


@pytest.mark.parametrize("entry, name", CASES, ids=[f"{e}-{n}" for e, n in CASES])
def test_wrong_kind_is_a_type_error_and_out_of_range_a_value_error(entry, name):
    wrong_kind, out_of_range, message = PARAMETERS[name]
    with pytest.raises(TypeError, match=message):
        ENTRY_POINTS[entry](**{name: wrong_kind})
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](**{name: out_of_range})


def test_the_measures_are_listed_once():
    assert MEASURES == PID_MEASURES + ("gaussian",)
    parser = argparse.ArgumentParser()
    add_score_command(parser.add_subparsers())
    files = ["score", "--teacher", "T.npy", "--student", "S.npy", "--labels", "y.npy"]
    for measure in MEASURES:  # the command line offers every measure
        assert parser.parse_args(files + ["--measure", measure]).measure == measure


def test_helpers():
    assert check_int(np.int64(3), "k") == 3 and type(check_int(np.int64(3), "k")) is int
    with pytest.raises(TypeError, match="k must be an int >= 1; got bool True"):
        check_int(True, "k")
    assert check_int(True, "verbose", minimum=0, allow_bool=True) == 1
    with pytest.raises(ValueError, match="x must be a number > 0; got nan"):
        check_real(np.nan, "x", "a number > 0", valid=lambda v: v > 0)
    with pytest.raises(TypeError, match=r"x must be a number > 0; got complex 1j"):
        check_real(1j, "x", "a number > 0", valid=lambda v: v > 0)
    assert check_choice(None, "b", (None, "permutation")) is None
    with pytest.raises(TypeError, match=r"b must be None or a str, one of \(None, 'p'\); "
                                        r"got list \['p'\]"):
        check_choice(["p"], "b", (None, "p"))
    with pytest.raises(ValueError, match=r"b must be one of \(None, 'p'\); got 'q'"):
        check_choice("q", "b", (None, "p"))
