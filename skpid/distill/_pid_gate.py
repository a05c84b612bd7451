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

import warnings
from typing import NamedTuple

import numpy as np
from skorch.callbacks import Callback
from torch.utils.data import Subset

from .._pid._core import pid_from_counts_many
from .._sampling import joint_counts
from .._validation import check_int
from ._data import dataset_targets
from ._losses import NoDistillation
from ._teacher_check import (LEVEL, MAX_FEATURES, discretize, encoded_labels,
                             information_test, layer_seeds, logits_distilled_besides,
                             teacher_codes)

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


def _pair_table(teacher_codes: np.ndarray, student_rep, labels: np.ndarray,
                seed) -> np.ndarray:
    """The contingency table of (teacher code, student code, label), the student's side
    discretized as the teacher's (same seed): equal representations, equal codes."""
    student_codes = discretize(student_rep, random_state=seed)
    shape = (int(teacher_codes.max()) + 1, int(student_codes.max()) + 1,
             int(labels.max()) + 1)
    return joint_counts(teacher_codes, student_codes, labels, shape)


def _gates(infos: list, tables: list) -> list:
    """The :class:`PairGate` of each pair (its information test, and its table or None
    for a teacher side without significant information); the tables solved together."""
    results = iter(pid_from_counts_many([t for t in tables if t is not None]))
    gates = []
    for info, table in zip(infos, tables):
        if table is None:  # nothing to distill: the student was not measured
            gates.append(PairGate(0.0, float("nan"), float("nan"), info.plugin_bits,
                                  info.p_value))
            continue
        result = next(results)
        share = result.unique_teacher / result.mi_teacher if result.mi_teacher > 0 else 0.0
        gates.append(PairGate(gate_value(info.p_value, share), float(share),
                              float(result.unique_teacher), float(result.mi_teacher),
                              info.p_value))
    return gates


def measure_gate(teacher_rep, student_rep, labels, name: str = "logits") -> PairGate:
    """The gate of one pair of representations of the same rows, measured as
    :class:`PIDGate` does (the seeds of the teacher layer ``name``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 200)
    >>> teacher = np.eye(3)[y] + 0.1 * rng.normal(size=(200, 3))
    >>> measure_gate(teacher, rng.normal(size=(200, 3)), y).gate  # student knows nothing
    1.0
    >>> measure_gate(teacher, teacher, y).share  # the student holds it all
    0.0
    """
    disc, perm = layer_seeds(name)
    labels = encoded_labels(labels)
    codes = discretize(teacher_rep, random_state=disc)
    info = information_test(codes, labels, random_state=perm)
    table = _pair_table(codes, student_rep, labels, disc) if info.p_value <= LEVEL else None
    return _gates([info], [table])[0]


def gate_pairs(net) -> dict:
    """``{gate: (teacher layer name, pair)}`` of ``net``: one gate per layer pair for a
    feature method, one for the logits (``method="kd"`` or another logit method,
    ``kd_weight``); pair None is the logits."""
    method = net._method()
    gates = {}
    if method.uses_features:
        for k, layer in enumerate(net._layer_lists()[0]):
            gates[f"gate_{k}"] = (layer or "logits", k)
    elif not isinstance(method, NoDistillation):
        gates[LOGITS] = ("logits", None)
    if logits_distilled_besides(net):
        gates.setdefault(LOGITS, ("logits", None))
    return gates


class PIDGate(Callback):
    """``pid_gate``: measure each layer pair's gate every few epochs, for the net to
    scale that pair's distillation term by (:func:`gate_value`).

    Installed by :class:`~skpid.PIDDistiller` as the default callback ``"pid_gate"``;
    it acts while the net's switch ``pid_gate`` is on. It measures on the validation
    split (the training rows where there is none, or where it has fewer than
    :data:`MIN_ROWS` rows; nothing below that, with a warning), on at most 2,000 rows,
    the same ones at every measurement, at epoch 1 and every ``every`` epochs after it
    (epochs counted over the whole training: ``partial_fit`` calls and runs resumed
    from a checkpoint keep the schedule), and on the first epoch of a call when no
    measurement is held yet. The teacher's side is measured once per call (its codes
    are shared with the teacher check where the rows are the same); later measurements
    run only the student. The latest measurement of each gate is the net's
    ``pid_gates_`` (a :class:`PairGate` per gate); every epoch's gates are recorded in
    ``history`` (``gate_0``, ..., ``gate_kd``). A student representation that is not
    finite (training diverged, ``on_nonfinite="warn"``) is not measured: the gates
    keep their last value, with a warning.

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
        return self

    def _history_keys(self, net) -> list:
        """The gate columns of ``net``'s history (for the epoch table)."""
        return list(gate_pairs(net)) if net.pid_gate else []

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Measure when due; record the current gates in this epoch's history row."""
        if not net.pid_gate:
            return
        gates = gate_pairs(net)
        every = net.pid_gate_every if self.every is None else self.every
        epoch = len(net.history)  # this epoch's row exists already
        held = getattr(net, "pid_gates_", {})
        if (epoch - 1) % every == 0 or not held:
            data, dataset = next(((name, d) for name, d in (("valid", dataset_valid),
                                                            ("train", dataset_train))
                                  if d is not None and len(d) >= MIN_ROWS), (None, None))
            if dataset is not None:
                net.pid_gates_ = {**held, **self._measure(net, data, dataset, gates)}
            elif not held:
                warnings.warn(
                    f"pid_gate: {len(dataset_train)} training rows, fewer than the "
                    f"{MIN_ROWS} needed to measure the gates; they stay open (1).",
                    UserWarning, stacklevel=2)
        held = getattr(net, "pid_gates_", {})
        for name in gates:
            gate = held.get(name)
            net.history.record(name, 1.0 if gate is None else gate.gate)

    def _measure(self, net, data: str, dataset, gates: dict) -> dict:
        codes = teacher_codes(net)
        teacher = codes.measure(net, data, dataset, dict(gates.values()))
        subset = Subset(dataset, codes.rows(data, len(dataset)))
        reps = net.representations(subset, pair=[pair for _, pair in gates.values()],
                                   side="student", max_features=MAX_FEATURES)
        labels = encoded_labels(dataset_targets(subset))
        names, infos, tables = [], [], []
        for (name, (layer, _)), (_, student) in zip(gates.items(), reps):
            if layer not in teacher:
                continue  # a non-finite teacher representation: training reports it
            if not np.isfinite(student).all():
                warnings.warn(f"pid_gate: the student's representation of {name} holds "
                              "NaN or infinity (training diverged); the gate keeps its "
                              "last value.", RuntimeWarning, stacklevel=3)
                continue
            codes, info = teacher[layer]
            names.append(name)
            infos.append(info)
            tables.append(_pair_table(codes, student, labels, layer_seeds(layer)[0])
                          if info.p_value <= LEVEL else None)
        return dict(zip(names, _gates(infos, tables)))
