"""The distiller's epoch table: skorch's PrintLog, narrow at ``verbose=1``, with columns
that never shift."""

from __future__ import annotations

import re
import sys
from itertools import cycle

from skorch.callbacks import PrintLog
from skorch.callbacks.logging import filter_log_keys
from skorch.utils import Ansi
from tabulate import tabulate

from ._losses import NoDistillation

#: The columns of the table at ``verbose=1`` (where recorded), besides the gates
#: (``gate_*``), skorch's event markers (``event_*``, e.g. ``Checkpoint``'s ``cp``) and
#: the columns of callbacks the net does not know (a user's ``EpochScoring``).
ESSENTIAL = ("epoch", "train_ce", "train_distill", "train_kd", "valid_loss", "valid_acc",
             "dur")

# Recorded by skorch and the net, printed at verbose=2 only: the loss of the optimizer
# step taken (in RID's teacher phase the filters' loss, so it jumps between phases) and
# the student's validation cross-entropy, which valid_loss repeats.
_DETAIL = frozenset({"train_loss", "valid_ce"})


class DistillerPrintLog(PrintLog):
    """skorch's :class:`~skorch.callbacks.PrintLog` with the essential columns at
    ``verbose=1``, every column at ``verbose=2``, and columns that never shift.

    At ``verbose=1`` the table shows the epoch, the student's cross-entropy on the
    training batches (``train_ce``), the distillation term (``train_distill``, and
    ``train_kd`` with ``kd_weight``), the student's validation loss (``valid_loss``, its
    cross-entropy on the validation split) and accuracy (``valid_acc``), the PID gates
    with ``pid_gate=True`` (``gate_0``, …, ``gate_kd``), skorch's event markers (such as
    ``Checkpoint``'s ``cp``), the columns of any other callback the net does not declare
    (a user's ``EpochScoring``), and the duration: one pair of layers with gates and KD
    fits in 120 characters. ``verbose=2`` adds everything else the net records: the
    loss of the step taken (``train_loss``), the other loss terms (``train_distance``,
    ``train_filter_ce``, ``train_gate``, their ``valid_`` counterparts), RID's
    ``teacher_phase`` and :class:`PIDMonitor`'s measurements. All of them are in
    ``history`` whatever the verbosity. A highlighted cell marks the best epoch so far
    of its column (skorch's ``*_best`` keys): ``valid_loss``, the column that
    ``Checkpoint``'s and ``EarlyStopping``'s default monitor ``valid_loss_best`` and the
    distiller's early stopping follow, is the student's cross-entropy alone, so it does
    not jump when RID switches between its phases.

    skorch's PrintLog prints the header once, for the keys of the first epoch, and each
    later row with the keys that row has: a key that first appears later (RID's
    ``train_distill`` after a first epoch spent in the teacher phase, a
    :class:`PIDMonitor` measuring every other epoch) moves the cells after it under the
    wrong headers. Here the columns are the keys the net declares before the first epoch
    (:func:`declared_keys`: its loss terms and its callbacks' keys) and every key seen
    since; a row without a key leaves that cell blank, and a column is as wide as its
    widest cell so far. When a new key or a wider cell appears, the header is printed
    again for the new layout. The columns come in groups: the epoch, the ``train_*``
    keys, the ``valid_*`` keys, the others (gates, monitors, ``teacher_phase``), the
    events, the duration.

    Parameters are skorch's: ``keys_ignored`` (columns never printed), ``sink``,
    ``tablefmt``, ``floatfmt`` and ``stralign``. A ``sink`` other than ``print`` gets
    the ``verbose=1`` table whatever ``verbose`` is, or the full one at ``verbose=2``.
    """

    def initialize(self):
        super().initialize()
        self.columns_ = []
        self.widths_ = {}
        self.declared_ = set()
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.declared_ = set(declared_keys(net)) if hasattr(net, "_method") else set()

    def _shown(self, key: str, verbose) -> bool:
        """Whether column ``key`` is printed at this verbosity."""
        if isinstance(verbose, (int, float)) and verbose >= 2:
            return True
        if key in ESSENTIAL or key.startswith(("gate_", "event_")):
            return True
        # the net's own detail columns; any other is a callback's the net does not know
        return not (key in _DETAIL or key in self.declared_)

    def _columns(self, keys, verbose) -> list:
        """The printed columns of ``keys``, in order: epoch, train_*, valid_*, the
        others, the event_* keys, dur (each group alphabetically)."""
        keys = {k for k in keys if k not in self.keys_ignored_ and self._shown(k, verbose)}
        plain = [k for k in filter_log_keys(sorted(keys), keys_ignored=self.keys_ignored_)
                 if k != "dur"]
        groups = ([k for k in plain if k.startswith("train_")]
                  + [k for k in plain if k.startswith("valid_")]
                  + [k for k in plain if not k.startswith(("train_", "valid_"))])
        events = [k for k in sorted(keys) if k.startswith("event_")]
        return (["epoch"] * ("epoch" in keys) + groups + events
                + ["dur"] * ("dur" in keys))

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        verbose = net.verbose
        columns = self._columns(set(row) | self.declared_ | set(self.columns_), verbose)
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
                self._print(line, verbose)
        self._print(lines[-1], verbose)
        if self.sink is print:
            sys.stdout.flush()

    def _print(self, text, verbose):
        # as skorch's PrintLog: a custom sink always gets the text, print only if verbose
        if self.sink is not print or verbose:
            self.sink(text)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _visible_len(text) -> int:
    return len(_ANSI.sub("", str(text)))


def declared_keys(net) -> list:
    """The epoch keys of ``net``'s history this fit can record, declared before the
    first epoch so that the table has a column for each from the start: the loss terms
    the method returns in either phase, and the keys of callbacks that declare theirs
    (``_history_keys(net)``: :class:`PIDMonitor`, :class:`PIDGate`)."""
    method = net._method()
    two_phase = getattr(method, "two_phase", False)
    student = ["ce"]
    if net.kd_weight > 0 or not isinstance(method, NoDistillation):
        student += list(getattr(method, "student_terms", ("distill",)))
        student += ["kd"] if net.kd_weight > 0 else []
    train = student + (list(getattr(method, "teacher_terms", ())) if two_phase else [])
    keys = [f"train_{term}" for term in train]
    if net.train_split is not None:
        keys += [f"valid_{term}" for term in student]
    keys += ["teacher_phase"] if two_phase else []
    for _, callback in net.callbacks_:
        declare = getattr(callback, "_history_keys", None)
        if callable(declare):
            keys += declare(net)
    return keys
