"""``pid_gate``: scale each distillation term by what PID says is left to distill.

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

from typing import NamedTuple

import numpy as np

from .._pid import pid_from_counts
from .._sampling import draw_seeds, joint_counts
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

    def measure(self, teacher_reps: list, student_reps: list, labels: np.ndarray) -> dict:
        """``{name: PairGate}`` from the representations of the measured rows."""
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
