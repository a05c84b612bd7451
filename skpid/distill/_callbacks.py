"""PIDMonitor: the PID between teacher and student representations during training;
the distiller's epoch table."""

from __future__ import annotations

import re
import sys
from itertools import cycle

import numpy as np
from skorch.callbacks import Callback, PrintLog
from skorch.callbacks.logging import filter_log_keys
from skorch.utils import Ansi
from tabulate import tabulate

from .._estimator import score_representations
from .._labels import transform_labels
from .._pid._validation import MEASURES, check_choice, check_int

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
        Use at most this many samples (the first ones) per measurement.
    n_clusters, n_components, measure, random_state
        Passed to :func:`~skpid.score_representations` (``random_state`` defaults to 0
        so that measurements are repeatable).
    prefix : str, default="valid"
        Prefix of the history keys.

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
                 prefix: str = "valid"):
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

    def initialize(self):
        """Check the settings (before the net trains: callbacks are initialized by
        ``initialize`` and ``fit``)."""
        check_int(self.every, "every", minimum=1)
        check_int(self.pair, "pair", minimum=0)
        if self.max_samples is not None:
            check_int(self.max_samples, "max_samples", minimum=1)
        check_int(self.n_clusters, "n_clusters", minimum=1)
        check_int(self.n_components, "n_components", minimum=1)
        check_choice(self.measure, "measure", MEASURES)
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

    def _measure(self, net, dataset_valid) -> None:
        if self.X is not None:
            X, y = self.X, transform_labels(self.y, net.classes_, "y")
        elif dataset_valid is not None:
            X, y = dataset_valid, _dataset_targets(dataset_valid)
        else:
            return  # no validation split and no data given: nothing to measure on
        if self.max_samples is not None and len(y) > self.max_samples:
            X = _head(X, self.max_samples)
            y = y[:self.max_samples]
        t, s = net.representations(X, pair=self.pair)
        result = score_representations(t, s, y, n_clusters=self.n_clusters,
                                       n_components=self.n_components,
                                       measure=self.measure, random_state=self.random_state)
        for name in _QUANTITIES:
            net.history.record(f"{self.prefix}_{name}", float(getattr(result, name)))


class _DistillerPrintLog(PrintLog):
    """skorch's :class:`~skorch.callbacks.PrintLog` with columns that never shift.

    skorch's PrintLog prints the header once, for the keys of the first epoch, and each
    later row with the keys that row has: a key that first appears later (RID's
    ``train_distill`` after a first epoch spent in the teacher phase, a
    :class:`PIDMonitor` measuring every other epoch) moves the cells after it under the
    wrong headers. Here the columns are the keys the net declares before the first epoch
    (``net._history_keys()``, its loss terms and its callbacks' keys) and every key seen
    since; a row without a key leaves that cell blank, and a column is as wide as its
    widest cell so far. When a new key or a wider cell appears, the header is printed
    again for the new layout.
    """

    def initialize(self):
        super().initialize()
        self.columns_ = []
        self.widths_ = {}
        self.declared_ = set()
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        declare = getattr(net, "_history_keys", None)
        self.declared_ = set(declare()) if callable(declare) else set()

    def _columns(self, keys) -> list:
        # skorch's order: epoch first, then the plain keys alphabetically, then the
        # event_* keys, dur last
        keys = set(keys)
        plain = [k for k in filter_log_keys(sorted(keys), keys_ignored=self.keys_ignored_)
                 if k != "dur"]
        events = [k for k in sorted(keys)
                  if k.startswith("event_") and k not in self.keys_ignored_]
        ends = [[k] if k in keys and k not in self.keys_ignored_ else []
                for k in ("epoch", "dur")]
        return ends[0] + plain + events + ends[1]

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        columns = self._columns(set(row) | self.declared_ | set(self.columns_))
        full = {**dict.fromkeys(columns), **row}  # blank cells for absent keys
        colors = cycle([color.value for color in Ansi if color != Ansi.ENDC])
        cells = [self.format_row(full, key, color) for key, color in zip(columns, colors)]
        headers = [key[len("event_"):] if key.startswith("event_") else key
                   for key in columns]
        widths = {key: max(self.widths_.get(key, 0), len(header), _visible_len(cell))
                  for key, header, cell in zip(columns, headers, cells)}
        new_layout = columns != self.columns_ or widths != self.widths_
        self.columns_, self.widths_ = columns, widths
        # Padding each header to its column's width fixes the width tabulate gives the
        # column (it sizes columns by the header and this row's cell only).
        padded = [header.rjust(widths[key]) for key, header in zip(columns, headers)]
        table = tabulate([cells], headers=padded, tablefmt=self.tablefmt,
                         floatfmt=self.floatfmt, stralign=self.stralign)
        lines = table.split("\n")
        if new_layout:
            for line in lines[:2]:
                self._print(line, net.verbose)
        self._print(lines[-1], net.verbose)
        if self.sink is print:
            sys.stdout.flush()

    def _print(self, text, verbose):
        # as skorch's PrintLog: a custom sink always gets the text, print only if verbose
        if self.sink is not print or verbose:
            self.sink(text)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _visible_len(text) -> int:
    return len(_ANSI.sub("", str(text)))


def _dataset_targets(dataset) -> np.ndarray:
    from skorch.dataset import Dataset
    from torch.utils.data import Subset
    if isinstance(dataset, Subset):
        return _dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, Dataset) and dataset.y is not None:
        return np.asarray(dataset.y)
    return np.asarray([dataset[i][1] for i in range(len(dataset))])


def _head(X, n):
    from torch.utils.data import Dataset as TorchDataset, Subset
    if isinstance(X, TorchDataset):
        return Subset(X, range(n))
    return X[:n]


def plot_pid_history(history, prefix: str = "valid", ax=None):
    """Plot Red, UniT, UniS, Syn (bits, left axis), and accuracy and ``pid_gate``'s gates
    (right axis, [0, 1]) over epochs.

    Parameters
    ----------
    history : skorch History or a fitted net
        With the columns recorded by :class:`PIDMonitor`, and the gates ``gate_0``, …,
        ``gate_kd`` of :class:`PIDDistiller` ``(pid_gate=True)`` where recorded.
    prefix : str, default="valid"
        The monitor's prefix; accuracy is read from ``{prefix}_acc`` where present.
    ax : matplotlib Axes or None
        Where to draw; a new figure if None.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ImportError
        If matplotlib (the optional ``plot`` extra) is not installed.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # optional extra
        raise ImportError("plot_pid_history needs matplotlib: pip install "
                          "'skpid[plot]' (or matplotlib).") from exc
    history = getattr(history, "history", history)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    labels = {"redundancy": "Red", "unique_teacher": "UniT", "unique_student": "UniS",
              "synergy": "Syn"}
    for name, label in labels.items():
        key = f"{prefix}_{name}"
        rows = [(row["epoch"], row[key]) for row in history if key in row]
        if rows:
            ax.plot(*zip(*rows), marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits")
    acc_key = f"{prefix}_acc"
    right = {"accuracy": [(row["epoch"], row[acc_key]) for row in history if acc_key in row]}
    gates = sorted({key for row in history for key in row if key.startswith("gate_")})
    for key in gates:
        right[key] = [(row["epoch"], row[key]) for row in history if key in row]
    handles, names = ax.get_legend_handles_labels()
    right = {name: rows for name, rows in right.items() if rows}
    if right:
        ax2 = ax.twinx()
        for name, rows in right.items():
            style = dict(color="black", linestyle="--") if name == "accuracy" else \
                dict(linestyle=":", drawstyle="steps-post")
            (line,) = ax2.plot(*zip(*rows), label=name, **style)
            handles, names = handles + [line], names + [name]
        ax2.set_ylim(-0.05, 1.05)
        ax2.set_ylabel(" / ".join(["accuracy"] * ("accuracy" in right)
                                  + ["gate"] * bool(gates)))
    ax.legend(handles, names, loc="best", fontsize="small")
    return ax
