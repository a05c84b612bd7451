"""PIDMonitor: the PID between teacher and student representations during training."""

from __future__ import annotations

import warnings

import numpy as np
from skorch.callbacks import Callback, PassthroughScoring

from .._estimator import score_representations
from .._labels import transform_labels
from .._validation import MEASURES, check_choice, check_int
from ._data import dataset_targets, head

_QUANTITIES = ("redundancy", "unique_teacher", "unique_student", "synergy", "mi_teacher",
               "mi_student")


class PIDMonitor(Callback):
    """Every ``every`` epochs, record the PID of the labels into a teacher and a student
    representation, measured on the validation split with
    :func:`skpid.score_representations` (the paper's normalise → PCA → KMeans pipeline,
    then the exact BROJA PID; seeded).

    Recorded in ``net.history`` as ``{prefix}_redundancy``, ``{prefix}_unique_teacher``,
    ``{prefix}_unique_student``, ``{prefix}_synergy``, ``{prefix}_mi_teacher`` and
    ``{prefix}_mi_student`` (bits), only on measured epochs; ``net.history[:,
    "valid_redundancy"]`` lists them.

    Parameters
    ----------
    every : int, default=1
        Measure every ``every`` epochs (and always after the last epoch of a fit).
    pair : int, default=0
        Which (teacher layer, student layer) pair of the distiller to measure.
    X, y : array-like or None, default=None
        Data to measure on; ``None`` uses the net's validation split (skorch's
        ``train_split``). Test data should not be used here: it would leak into
        decisions such as early stopping.
    max_samples : int or None, default=2000
        Use at most this many samples (the first ones) per measurement (at least 2).
    n_clusters, n_components, measure, random_state
        Passed to :func:`~skpid.score_representations` (``random_state`` defaults to 0
        so that measurements are repeatable).
    bias_correction : {"permutation", None}, default="permutation"
        Subtract the mean PID of ``n_permutations`` label-permuted surrogates (as
        :func:`~skpid.score_representations`): plug-in estimates on a validation split
        of a few hundred rows are mostly bias (40 rows of pure noise give I(Y;T,S) ≈ 2.9
        bits plug-in, 0.04 corrected). None records the plug-in values.
    n_permutations : int, default=20
        Surrogates of the bias correction.
    prefix : str, default="valid"
        Prefix of the history keys.

    Notes
    -----
    Below about ``(k_T k_S - 1)(|Y| - 1) / (2 ln 2 log2 |Y|)`` rows (k the clusters, ``|Y|``
    the classes: 193 rows for 10 clusters and 10 classes) the plug-in estimate's
    expected bias (Miller–Madow) exceeds the largest information there is, ``log2 |Y|``; the
    monitor warns once per fit when it measures on fewer rows.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skpid import PIDDistiller, PIDMonitor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)).astype("float32"); y = (X[:, 0] > 0).astype("int64")
    >>> net = PIDDistiller(nn.Sequential(nn.Linear(4, 2)), nn.Sequential(nn.Linear(4, 2)),
    ...                    method="kd", max_epochs=2, verbose=0,
    ...                    callbacks=[PIDMonitor(n_clusters=2)]).fit(X, y)
    >>> len(net.history[:, "valid_redundancy"])
    2
    """

    def __init__(self, every: int = 1, pair: int = 0, X=None, y=None,
                 max_samples: int | None = 2000, n_clusters: int = 10,
                 n_components: int = 5, measure: str = "broja", random_state=0,
                 prefix: str = "valid", bias_correction="permutation",
                 n_permutations: int = 20):
        self.every = every
        self.pair = pair
        self.X = X
        self.y = y
        self.max_samples = max_samples
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.measure = measure
        self.random_state = random_state
        self.prefix = prefix
        self.bias_correction = bias_correction
        self.n_permutations = n_permutations

    def initialize(self):
        """Check the settings (before the net trains: callbacks are initialized by
        ``initialize`` and ``fit``)."""
        check_int(self.every, "every", minimum=1)
        check_int(self.pair, "pair", minimum=0)
        if self.max_samples is not None:
            # one row has no distribution to decompose
            check_int(self.max_samples, "max_samples", minimum=2)
        check_int(self.n_clusters, "n_clusters", minimum=1)
        check_int(self.n_components, "n_components", minimum=1)
        check_choice(self.measure, "measure", MEASURES)
        check_choice(self.bias_correction, "bias_correction", ("permutation", None))
        check_int(self.n_permutations, "n_permutations", minimum=1)
        self.warned_ = False
        if not isinstance(self.prefix, str) or not self.prefix:
            raise TypeError(f"prefix must be a non-empty str; got {self.prefix!r}.")
        if (self.X is None) != (self.y is None):
            raise ValueError("X and y must be given together (or both None).")
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check ``pair`` against the net's layer pairs before training starts, and note
        the epoch this call plans to end with."""
        pairs = getattr(net, "_layer_lists", None)
        if pairs is not None and self.pair >= len(pairs()[0]):
            raise ValueError(f"pair must index teacher_layers / student_layers "
                             f"({len(pairs()[0])} pair(s)); got {self.pair!r}.")
        self.last_epoch_ = len(net.history) + net.max_epochs

    def _history_keys(self, net) -> list:
        """The history keys this monitor records (for the distiller's epoch table)."""
        if self.X is None and getattr(net, "train_split", None) is None:
            return []
        return [f"{self.prefix}_{name}" for name in _QUANTITIES]

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Score the layer pair every ``every`` epochs (and after the planned last one)."""
        epoch = len(net.history)
        if epoch % self.every and epoch != self.last_epoch_:
            return
        self._measure(net, dataset_valid)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Score the last epoch if it was not: training stopped early (EarlyStopping) or
        ran another number of epochs than ``max_epochs`` (``partial_fit(epochs=...)``)."""
        if len(net.history) and f"{self.prefix}_redundancy" not in net.history[-1]:
            dataset_valid = None
            if self.X is None and X is not None:
                _, dataset_valid = net.get_split_datasets(X, y)  # fit's split again
            self._measure(net, dataset_valid)

    def _warn_small_sample(self, n_rows: int, n_classes: int) -> None:
        cells = (self.n_clusters ** 2 - 1) * max(n_classes - 1, 1)
        needed = cells / (2 * np.log(2) * np.log2(max(n_classes, 2)))
        if n_rows < needed and not self.warned_ and self.measure != "gaussian":
            self.warned_ = True
            warnings.warn(
                f"PIDMonitor: {n_rows} rows for {self.n_clusters} x {self.n_clusters} "
                f"clusters and {n_classes} classes: the plug-in estimates' bias exceeds "
                f"the largest information there is below about {needed:.0f} rows"
                + (", so even the bias-corrected values are noisy" if self.bias_correction
                   else "; use bias_correction='permutation'")
                + ". Measure on more rows (a larger validation split, or X=, y=) or with "
                "fewer n_clusters.", UserWarning, stacklevel=3)

    def _measure(self, net, dataset_valid) -> None:
        if self.X is not None:
            X, y = self.X, transform_labels(self.y, net.classes_, "y")
        elif dataset_valid is not None:
            X, y = dataset_valid, dataset_targets(dataset_valid)
        else:
            return  # no validation split and no data given: nothing to measure on
        if self.max_samples is not None and len(y) > self.max_samples:
            X = head(X, self.max_samples)
            y = y[:self.max_samples]
        t, s = net.representations(X, pair=self.pair)
        if not (np.isfinite(t).all() and np.isfinite(s).all()):
            warnings.warn(f"PIDMonitor: the {'teacher' if not np.isfinite(t).all() else 'student'}"
                          f"'s representation holds NaN or infinity (training diverged?); "
                          f"epoch {len(net.history)} is not measured.", RuntimeWarning,
                          stacklevel=3)
            return
        self._warn_small_sample(len(y), len(np.unique(y)))
        result = score_representations(t, s, y, n_clusters=self.n_clusters,
                                       n_components=self.n_components,
                                       measure=self.measure, random_state=self.random_state,
                                       bias_correction=self.bias_correction,
                                       n_permutations=self.n_permutations)
        for name in _QUANTITIES:
            net.history.record(f"{self.prefix}_{name}", float(getattr(result, name)))


class LossScoring(PassthroughScoring):
    """skorch's :class:`~skorch.callbacks.PassthroughScoring` (the ``train_loss`` and
    ``valid_loss`` columns) recording Python floats, as every other column of the
    distiller's history, rather than numpy scalars."""

    def get_avg_score(self, history) -> float:
        return float(super().get_avg_score(history))
