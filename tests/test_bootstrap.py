"""The bootstrap intervals are scipy's basic intervals of the reported statistic."""

from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from skpid._sampling import QUANTITIES, _corrected, basic_interval, codes_pid, estimate_pid
from skpid.datasets import noisy_gate_pmf, sample_pmf


def scipy_basic(statistic, n, replicates, confidence):
    """scipy.stats.bootstrap's basic interval from given replicates (one row each), with
    the clipping of skpid (information is never negative)."""
    res = stats.bootstrap((np.arange(n),), statistic, n_resamples=0, vectorized=True,
                          bootstrap_result=SimpleNamespace(bootstrap_distribution=replicates.T),
                          confidence_level=confidence, method="basic")
    low = np.maximum(res.confidence_interval.low, 0.0)
    return low, np.maximum(res.confidence_interval.high, low)


class Recording:
    """``fn`` of estimate_pid that records the rows of every call."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, rows=None, y_rows=None):
        self.calls.append((rows, y_rows))
        return self.fn(rows=rows, y_rows=y_rows)

    def resamples(self):
        """The bootstrap resamples: rows paired with their own labels (a permutation
        surrogate pairs ``arange(n)`` with permuted labels)."""
        return [rows for rows, y_rows in self.calls
                if rows is not None and np.array_equal(rows, y_rows)]


def values(result):
    return np.array([getattr(result, name) for name in QUANTITIES])


@pytest.mark.parametrize("measure", ["mmi", "broja"])
@pytest.mark.parametrize("bias_correction", [None, "permutation"])
def test_interval_is_scipys_basic_interval_on_the_same_resamples(measure, bias_correction):
    p = noisy_gate_pmf("AND", 0.2)
    n, confidence = 300, 0.9
    t, s, y = sample_pmf(p, n, random_state=0)
    fn = partial(codes_pid, t, s, y, p.shape, measure, 2.0)
    recording = Recording(fn)
    result = estimate_pid(recording, n, bias_correction=bias_correction, n_permutations=5,
                          n_bootstrap=40, confidence=confidence, random_state=0)
    resamples = recording.resamples()
    assert len(resamples) == 40

    # The reported statistic: the plug-in, or the corrected plug-in with the bias held at
    # its full-sample value.
    if bias_correction is None:
        def reported(raw):
            return raw
    else:
        bias = np.array([result.bias[name] for name in QUANTITIES])
        reported = partial(_corrected, bias=bias)
    replicates = np.array([reported(values(fn(rows=r, y_rows=r))) for r in resamples])

    def statistic(rows, axis=-1):
        assert np.array_equal(rows, np.arange(n))  # scipy only asks for the estimate
        return reported(values(fn()))

    np.testing.assert_array_equal(reported(values(fn())), values(result))
    low, high = scipy_basic(statistic, n, replicates, confidence)
    ours = np.array([result.ci[name] for name in QUANTITIES])
    assert not np.array_equal(low, high)  # a real interval, not a clipped point
    np.testing.assert_allclose(ours[:, 0], low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours[:, 1], high, rtol=1e-12, atol=1e-15)


def test_basic_interval_reflects_the_quantiles_about_the_estimate():
    rng = np.random.default_rng(0)
    estimate = np.array([1.0, 2.0, 0.05])
    replicates = estimate + 0.3 + rng.normal(scale=[0.1, 0.5, 0.02], size=(500, 3))
    low, high = basic_interval(estimate, replicates, 0.95)
    q_lo, q_hi = np.quantile(replicates, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(low[:2], 2 * estimate[:2] - q_hi[:2])
    np.testing.assert_allclose(high[:2], 2 * estimate[:2] - q_lo[:2])
    # Replicates biased upward (+0.3) move the interval down by as much...
    np.testing.assert_allclose((low[:2] + high[:2]) / 2, estimate[:2] - 0.3, atol=0.1)
    # ...and information is never negative: the third is clipped to [0, 0].
    assert low[2] == 0.0 and high[2] == 0.0
    same = scipy_basic(lambda rows, axis=-1: estimate, 10, replicates, 0.95)
    np.testing.assert_allclose(low, same[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(high, same[1], rtol=1e-12, atol=1e-15)
