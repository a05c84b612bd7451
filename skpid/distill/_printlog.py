"""The distiller's epoch table: skorch's PrintLog with columns that never shift."""

from __future__ import annotations

import re
import sys
from itertools import cycle

from skorch.callbacks import PrintLog
from skorch.callbacks.logging import filter_log_keys
from skorch.utils import Ansi
from tabulate import tabulate


class DistillerPrintLog(PrintLog):
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
