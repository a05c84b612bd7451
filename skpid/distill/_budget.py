"""The training budget a user who changes nothing gets: train until the student has
learned what it can, then stop (as scikit-learn's ``MLPClassifier`` with
``early_stopping=True``), on 150 rows as on 50,000.

- :class:`StudentEarlyStopping`: stop once the student has not improved for
  ``patience`` epochs or ``max_steps`` optimizer updates, and at least ``min_steps``
  updates (small data have few updates per epoch), and restore its best epoch.
- :func:`student_loss`: the student's cross-entropy on the validation split
  (``valid_loss``), or on the training batches (``train_ce``) without one. It does not
  move with RID's phases.
"""

from __future__ import annotations

from copy import deepcopy

from skorch.callbacks import Callback

from .._validation import check_choice, check_flag, check_int, check_real


def student_loss(net) -> float:
    """The student's loss of the last epoch: ``valid_loss`` (its cross-entropy on the
    validation split) where the net has one, else ``train_ce``."""
    return _row_loss(net.history[-1])


class StudentEarlyStopping(Callback):
    """Stop training once the student stops improving; restore its best epoch.

    Installed by :class:`~skpid.PIDDistiller` as the default callback
    ``"early_stopping"`` (``callbacks__early_stopping=None`` trains all of
    ``max_epochs``; ``callbacks__early_stopping__patience=40`` waits longer). It watches
    the student on the validation split: its accuracy, ties (a split of 40 rows has
    coarse accuracies) broken by its cross-entropy (``valid_loss``); without a split,
    the training cross-entropy (``train_ce``). Halfway to stopping it lowers the learning
    rates (``lr_decay``); training stops once neither improved for ``patience`` epochs
    or ``max_steps`` optimizer updates, whichever comes first, and for at least
    ``min_steps`` updates (150 rows make 2 or 3 updates an epoch; 20,000
    rows 250). Like scikit-learn's ``MLPClassifier(early_stopping=True)``, which
    watches the validation accuracy; its ``n_iter_no_change=10`` epochs stopped
    distilled students too early here (user guide, "Training a student"). The count
    carries over ``partial_fit`` calls and runs resumed from a checkpoint: it is read
    back from the history.

    Parameters
    ----------
    monitor : {"accuracy", "loss"}, default="accuracy"
        ``"loss"`` watches the cross-entropy alone.
    patience : int, default=20
        Epochs without improvement before stopping (≥ 1).
    min_steps : int, default=300
        Updates without improvement before stopping, at least (≥ 0).
    max_steps : int, default=5000
        Updates without improvement after which training stops even within
        ``patience`` epochs (≥ 1): large data need fewer epochs to tell a plateau.
    threshold : float, default=1e-4
        Relative improvement that counts (≥ 0).
    load_best : bool, default=True
        At the end of training, restore the student's parameters of the best epoch
        (held in memory: a run resumed from a checkpoint restores the best epoch it
        has seen since it resumed).
    lr_decay : float or None, default=0.3
        Halfway to stopping (half the patience and half the updates without
        improvement), multiply every learning rate by this factor (in (0, 1]), once per
        plateau: the student may get past it before training stops (Adam at 1e-2
        plateaus above its best on large data). None keeps the learning rates.
    """

    def __init__(self, monitor="accuracy", patience=20, min_steps=300, max_steps=5000,
                 threshold=1e-4, load_best=True, lr_decay=0.3):
        self.monitor = monitor
        self.patience = patience
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.threshold = threshold
        self.load_best = load_best
        self.lr_decay = lr_decay

    def initialize(self):
        check_choice(self.monitor, "monitor", ("loss", "accuracy"))
        check_int(self.patience, "patience", minimum=1)
        check_int(self.min_steps, "min_steps", minimum=0)
        check_int(self.max_steps, "max_steps", minimum=1)
        check_real(self.threshold, "threshold", low=0)
        check_flag(self.load_best, "load_best")
        if self.lr_decay is not None:
            check_real(self.lr_decay, "lr_decay", low=0, high=1, low_open=True)
        self.best_weights_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        """Read the best epoch and the updates since it back from the history (a
        continued or resumed fit keeps counting)."""
        self.best_, self.best_epoch_, self.since_ = None, 0, (0, 0)
        for row in net.history:
            if "valid_loss" in row or "train_ce" in row:
                self._update(row, self._score(row), _row_steps(row))
        # the learning rates were lowered in this plateau already (the optimizers'
        # state, which holds them, carries over too): do not lower them twice
        self.decayed_ = self._halfway()

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        if self._update(row, _shared(net, self._score(row)), _row_steps(row)) \
                and self.load_best:
            self.best_weights_ = deepcopy(_student(net).state_dict())
        if self.lr_decay is not None and self._halfway() and not self.decayed_:
            # halfway to stopping: a lower learning rate may get past the plateau
            self.decayed_ = True
            for optimizer in _optimizers(net):
                for group in optimizer.param_groups:
                    group["lr"] *= self.lr_decay
        epochs, steps = self.since_
        if steps >= self.min_steps and (epochs >= self.patience or steps >= self.max_steps):
            if net.verbose:
                print(f"Stopping: the student has not improved for {epochs} epochs "
                      f"({steps} updates) since epoch {self.best_epoch_}.")
            raise KeyboardInterrupt

    def _halfway(self) -> bool:
        """Whether the epochs and updates without improvement are half the way to
        stopping."""
        epochs, steps = self.since_
        return (steps >= self.min_steps / 2
                and (epochs >= self.patience / 2 or steps >= self.max_steps / 2))

    def on_train_end(self, net, **kwargs):
        if (self.load_best and self.best_weights_ is not None
                and self.best_epoch_ != len(net.history)):
            _student(net).load_state_dict(self.best_weights_)
            if net.verbose:
                print(f"Restored the student of epoch {self.best_epoch_}.")

    def _score(self, row) -> tuple:
        """Lower is better: ``(loss,)``, or ``(-accuracy, loss)`` (ties of the coarse
        accuracy of a small split broken by the loss)."""
        if self.monitor == "accuracy" and "valid_acc" in row:
            return (-float(row["valid_acc"]), _row_loss(row))
        return (_row_loss(row),)

    def _update(self, row, score, steps) -> bool:
        """Account for one epoch; whether it is the best so far."""
        best = self.best_
        improved = (best is None or score[0] < best[0] - self.threshold * abs(best[0])
                    or (len(score) > 1 and score[0] == best[0]
                        and score[1] < best[1] - self.threshold * abs(best[1])))
        if improved:
            self.best_, self.best_epoch_, self.since_ = score, row["epoch"], (0, 0)
            self.decayed_ = False
            return True
        self.since_ = (self.since_[0] + 1, self.since_[1] + steps)
        return False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["best_weights_"] = None  # the net holds them; do not pickle them twice
        return state


def _student(net):
    """The student module, unwrapped from a data-parallel wrapper."""
    student = getattr(net, "_student", None)
    return student() if callable(student) else net.module_


def _optimizers(net) -> list:
    """The net's optimizers: the student's and, on a distiller, RID's filters'."""
    return [getattr(net, name + "_") for name in ("optimizer", "filter_optimizer")
            if getattr(net, name + "_", None) is not None]


def _shared(net, score: tuple) -> tuple:
    """Rank 0's score on every process of an accelerated net (each rank's validation
    loss is its shard's): all ranks then stop at the same epoch."""
    accelerator = getattr(net, "accelerator", None)
    if accelerator is None or accelerator.num_processes < 2:
        return score
    import torch
    from accelerate.utils import broadcast
    shared = broadcast(torch.tensor(score, dtype=torch.float64, device=accelerator.device),
                       from_process=0)
    return tuple(float(v) for v in shared.cpu())


def _row_loss(row) -> float:
    return float(row["valid_loss"] if "valid_loss" in row else row["train_ce"])


def _row_steps(row) -> int:
    """Optimizer updates of one epoch: its training batches."""
    return sum(1 for batch in row.get("batches", ()) if "train_batch_size" in batch)
