"""``pid_gate``: scale each distillation term by what PID says is left to distill (the
:class:`PIDGate` callback).

For each layer pair (teacher representation T, student representation S), on held-out
rows (the net's validation split, else its training rows), every few epochs:

- *significance*: is I(Y;T) distinguishable from zero? The test of ``teacher_check``
  (estimators' discretization, plug-in mutual information, 199 label permutations,
  level 0.01), run once per fit since the teacher is frozen. A nuisance teacher fails it
  and its gate is 0 for the whole fit.
- *what is left*: the share ``Uni(Y: T\\S) / I(Y;T)`` of the teacher's task
  information the student does not hold yet (plug-in BROJA PID of the discretized T, S
  and Y). The gate opens fully while the share is at least :data:`OPEN_SHARE` and
  closes linearly below it, to 0 when the student holds all of it.

``gate = 1[p ≤ 0.01] · min(1, share / OPEN_SHARE)``.

Plug-in estimates on few rows overstate the unique information (more cells, more
spurious information), which keeps the gate open: a gate that closes is evidence that
the student has caught up.
"""

from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple

import numpy as np
from skorch.callbacks import Callback
from torch.utils.data import Subset

from .._pid import pid_from_counts
from .._pid._validation import check_int
from .._sampling import draw_seeds, joint_counts
from ._data import dataset_targets
from ._losses import NoDistillation
from ._teacher_check import (LEVEL, TeacherInformation, discretize, information_test,
                             subsample_rows)

#: The gate is fully open while the student lacks at least this share of the teacher's
#: task information, and closes linearly below it.
OPEN_SHARE = 0.1
#: Fewer held-out rows than this and the validation split is not used (training rows
#: are); fewer training rows too and nothing is measured (the gates stay open).
MIN_ROWS = 30
#: The name of the gate of logit distillation (``method="kd"``, ``kd_weight``).
LOGITS = "gate_kd"


class PairGate(NamedTuple):
    """One measurement of one layer pair's gate."""

    gate: float
    share: float           # Uni(Y: T\\S) / I(Y;T), plug-in
    unique_teacher: float  # bits
    mi_teacher: float      # bits, plug-in
    p_value: float         # of I(Y;T) against zero


def gate_value(p_value: float, share: float) -> float:
    """``1[p ≤ LEVEL] · min(1, share / OPEN_SHARE)``.

    Examples
    --------
    >>> gate_value(0.005, 0.4), gate_value(0.005, 0.05), gate_value(0.3, 0.9)
    (1.0, 0.5, 0.0)
    """
    if p_value > LEVEL:
        return 0.0
    return float(min(1.0, max(share, 0.0) / OPEN_SHARE))


class GateMeter:
    """The gates of one fit: chooses the measurement rows once, discretizes and tests
    each teacher representation once (the teacher is frozen), and measures the
    student's side on every call.

    Parameters
    ----------
    names : list of str
        The gate of each representation pair, in the order of the lists given to
        :meth:`measure` (``"gate_0"``, …, :data:`LOGITS`).
    random_state : int
        Seeds the row subsample, the discretizations and the permutations.
    """

    def __init__(self, names: list, random_state: int = 0):
        self.names = list(names)
        self.random_state = random_state
        self.rows_ = None
        self.teachers_ = None

    def rows(self, n_rows: int) -> np.ndarray:
        """The (at most 2,000) rows measured on every call: fixed per fit."""
        if self.rows_ is None:
            self.rows_ = subsample_rows(n_rows, self.random_state)
        return self.rows_

    @property
    def needs_teacher(self) -> bool:
        """Whether :meth:`measure` needs the teacher's representations (only once: the
        teacher is frozen and its codes are kept)."""
        return self.teachers_ is None

    def measure(self, teacher_reps: list | None, student_reps: list,
                labels: np.ndarray) -> dict:
        """``{name: PairGate}`` from the representations of the measured rows (the
        teacher's only while :attr:`needs_teacher`)."""
        labels = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
        seeds = draw_seeds(self.random_state, 2 * len(self.names)).reshape(-1, 2)
        if self.teachers_ is None:
            self.teachers_ = [_teacher_side(t, labels, *pair_seeds)
                              for t, pair_seeds in zip(teacher_reps, seeds)]
        # the student's side is discretized as the teacher's (same seed): equal
        # representations get equal codes
        return {name: _pair_gate(codes, info, s, labels, pair_seeds[0])
                for name, (codes, info), s, pair_seeds
                in zip(self.names, self.teachers_, student_reps, seeds)}


def _teacher_side(representation, labels, disc_seed, perm_seed):
    codes = discretize(representation, random_state=int(disc_seed))
    return codes, information_test(codes, labels, random_state=int(perm_seed))


def _pair_gate(teacher_codes: np.ndarray, info: TeacherInformation, student_rep,
               labels: np.ndarray, seed) -> PairGate:
    if info.p_value > LEVEL:  # nothing to distill: no need to measure the student
        return PairGate(0.0, float("nan"), float("nan"), info.plugin_bits, info.p_value)
    student_codes = discretize(student_rep, random_state=int(seed))
    shape = (int(teacher_codes.max()) + 1, int(student_codes.max()) + 1,
             int(labels.max()) + 1)
    result = pid_from_counts(joint_counts(teacher_codes, student_codes, labels, shape))
    share = result.unique_teacher / result.mi_teacher if result.mi_teacher > 0 else 0.0
    return PairGate(gate_value(info.p_value, share), float(share),
                    float(result.unique_teacher), float(result.mi_teacher), info.p_value)


def gate_names(net) -> list:
    """The gates of ``net``: one per layer pair for a feature method, one for the logits
    (``method="kd"`` or another logit method, ``kd_weight``)."""
    method = net._method()
    names = []
    if method.uses_features:
        names += [f"gate_{k}" for k in range(len(net._layer_lists()[0]))]
    elif not isinstance(method, NoDistillation):
        names.append(LOGITS)
    if net.kd_weight > 0 and LOGITS not in names:
        names.append(LOGITS)
    return names


class PIDGate(Callback):
    """``pid_gate``: measure each layer pair's gate every few epochs, for the net to
    scale that pair's distillation term by (:func:`gate_value`).

    Installed by :class:`~skpid.PIDDistiller` as the default callback ``"pid_gate"``;
    it acts while the net's switch ``pid_gate`` is on. It measures on the validation
    split (the training rows where there is none, or where it has fewer than
    :data:`MIN_ROWS` rows; nothing below that, with a warning), on at most 2,000 rows,
    the same ones at every measurement, on the first epoch of each ``fit`` /
    ``partial_fit`` call and every ``every`` epochs after it. The latest measurement of
    each gate is the net's ``pid_gates_`` (a :class:`PairGate` per gate); every epoch's
    gates are recorded in ``history`` (``gate_0``, ..., ``gate_kd``).

    Parameters
    ----------
    every : int or None, default=None
        Measure every this many epochs; None follows the net's ``pid_gate_every``.
        Set it the skorch way: ``callbacks__pid_gate__every=3``.
    """

    def __init__(self, every=None):
        self.every = every

    def initialize(self):
        if self.every is not None:
            check_int(self.every, "every", minimum=1)
        self.meter_ = None
        return self

    def _history_keys(self, net) -> list:
        """The gate columns of ``net``'s history (for the epoch table)."""
        return gate_names(net) if net.pid_gate else []

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """A meter per call: its rows and teacher codes hold for this call's data."""
        self.meter_ = None
        if not net.pid_gate:
            return
        seed = net.random_state if isinstance(net.random_state, numbers.Integral) else 0
        self.meter_ = GateMeter(gate_names(net), seed)
        self.start_ = len(net.history)
        net.pid_gates_ = {}

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Measure on the first epoch of a call and every ``every`` epochs after it;
        record the current gates in this epoch's history row."""
        if self.meter_ is None:
            return
        every = net.pid_gate_every if self.every is None else self.every
        # epochs of this fit / partial_fit call so far (this epoch's row exists already)
        epoch = len(net.history) - 1 - self.start_
        if epoch % every == 0:
            dataset = next((d for d in (dataset_valid, dataset_train)
                            if d is not None and len(d) >= MIN_ROWS), None)
            if dataset is not None:
                net.pid_gates_ = self._measure(net, dataset)
            elif epoch == 0:
                warnings.warn(
                    f"pid_gate: {len(dataset_train)} training rows, fewer than the "
                    f"{MIN_ROWS} needed to measure the gates; they stay open (1).",
                    UserWarning, stacklevel=2)
        for name in self.meter_.names:
            gate = net.pid_gates_.get(name)
            net.history.record(name, 1.0 if gate is None else gate.gate)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Drop the meter's per-call data (rows, teacher codes)."""
        self.meter_ = None

    def _measure(self, net, dataset) -> dict:
        meter = self.meter_
        # gate_k is pair k (names list the pairs in order, the logits' gate last)
        pairs = [None if name == LOGITS else k for k, name in enumerate(meter.names)]
        subset = Subset(dataset, meter.rows(len(dataset)))
        side = "both" if meter.needs_teacher else "student"
        reps = net.representations(subset, pair=pairs, side=side)
        teacher = [t for t, _ in reps] if meter.needs_teacher else None
        return meter.measure(teacher, [s for _, s in reps], dataset_targets(subset))
