"""A NaN or infinite loss: which epoch, batch and term, and where it can tell, why
(``PIDDistiller(on_nonfinite=...)``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .._arrays import to_numpy


def all_finite(tensor) -> bool:
    """Whether a tensor holds only finite values (anything else counts as finite)."""
    return not isinstance(tensor, torch.Tensor) or bool(torch.isfinite(tensor).all())


def check_finite_input(X) -> None:
    """A clear error for NaN or infinity in real-valued training input."""
    values = to_numpy(X.to_numpy() if hasattr(X, "to_numpy") else X)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fc" \
            and not np.isfinite(values).all():
        raise ValueError("X contains NaN or infinity; impute or drop those samples "
                         "before distilling.")


def report_nonfinite(net, values: dict, total: float, training: bool, phase: str, X,
                     y_pred, s_feats, teacher_out) -> None:
    """Raise (``on_nonfinite="raise"``) or warn about a non-finite loss of ``net``."""
    bad = [f"{name}={value}" for name, value in values.items() if not math.isfinite(value)]
    if bad:
        what = f"loss term {', '.join(bad)}"
        cause = nonfinite_cause(net, X, y_pred, s_feats, teacher_out)
    else:
        terms = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
        what = f"the weighted sum of the terms (the loss) is {total} ({terms})"
        cause = ("The terms are finite: their weighted sum overflowed (look at "
                 "ce_weight, pid_weight and kd_weight).")
    epoch, where = batch_position(net, training)
    two_phase = getattr(net._method(), "two_phase", False)
    phase_text = f" ({phase} phase)" if two_phase and training else ""
    message = f"Non-finite loss at {where}{phase_text}: {what}. {cause}"
    if net.on_nonfinite == "raise":
        raise FloatingPointError(
            f"{message} Training stopped; on_nonfinite='warn' trains on regardless.")
    # one warning per epoch: once parameters are NaN every batch would warn
    if getattr(net, "nonfinite_warned_epoch_", None) != epoch:
        net.nonfinite_warned_epoch_ = epoch
        warnings.warn(f"{message} (Further non-finite batches of this epoch are not "
                      "reported.)", RuntimeWarning, stacklevel=3)


def batch_position(net, training: bool):
    """``(epoch, "epoch e, training batch b")`` of the batch being computed."""
    if not len(net.history):
        return None, "a batch outside fit"
    row = net.history[-1]
    batches = row.get("batches", [])
    # training batches come first in an epoch; the current one is not recorded yet
    n_train = sum(1 for b in batches if "train_batch_size" in b)
    if training:
        return row.get("epoch"), f"epoch {row.get('epoch')}, training batch {n_train + 1}"
    return row.get("epoch"), (f"epoch {row.get('epoch')}, validation batch "
                              f"{len(batches) - n_train}")


def nonfinite_cause(net, X, y_pred, s_feats, teacher_out) -> str:
    """The first non-finite input, teacher output, student output or parameter."""
    if isinstance(X, torch.Tensor) and not all_finite(X):
        return "The input batch X holds NaN or infinity."
    t_names, s_names = net._layer_lists()
    if teacher_out is not None:
        t_logits, t_feats = teacher_out
        teacher = f"The teacher ({type(net.teacher).__name__})"
        for i, (name, feats) in enumerate(zip(t_names, t_feats)):
            if name is not None and not all_finite(feats):
                return (f"{teacher} outputs NaN or infinity at teacher_layers[{i}] "
                        f"= {name!r}.")
        if not all_finite(t_logits):
            return f"{teacher} outputs NaN or infinity in its logits (its output)."
    student = f"The student ({type(net._student()).__name__})"
    if not all_finite(y_pred):
        cause = f"{student} outputs NaN or infinity in its logits (its output)"
    else:
        cause = next((f"{student} outputs NaN or infinity at student_layers[{i}] = "
                      f"{name!r}" for i, (name, feats) in enumerate(zip(s_names, s_feats))
                      if name is not None and not all_finite(feats)), None)
    diverged = [part for part, module in (("student", net._student()),
                                          ("distillation parts (method_)",
                                           net._method()))
                if not all(all_finite(p) for p in module.parameters())]
    if diverged:
        return ((cause + ": " if cause else "") + f"the parameters of the "
                f"{' and the '.join(diverged)} are no longer finite: training "
                "diverged (a smaller lr may help).")
    if cause:
        return cause + "."
    return ("The inputs, the teacher's and the student's outputs and parameters are "
            "finite: the term itself overflowed (look at temperature and the scale of "
            "the representations).")
