"""``plot_pid_history``: PID atoms, accuracy and gates over the epochs of a fit."""

from __future__ import annotations

import math

import numpy as np

_ATOMS = {"redundancy": "Red", "unique_teacher": "UniT", "unique_student": "UniS",
          "synergy": "Syn"}
_DATA = {"valid": "validation split", "train": "training data"}


def plot_pid_history(history, prefix: str = "valid", ax=None, title=None):
    """Plot Red, UniT, UniS, Syn (bits, left axis), and accuracy and ``pid_gate``'s gates
    (right axis, [0, 1]) over epochs.

    The legend sits in a band kept free above the curves, so that it covers no point.
    A new figure uses matplotlib's constrained layout: ``savefig`` keeps the axis
    labels and the title.

    Parameters
    ----------
    history : skorch History or a fitted net
        With the columns recorded by :class:`PIDMonitor`, and the gates ``gate_0``, …,
        ``gate_kd`` of :class:`PIDDistiller` ``(pid_gate=True)`` where recorded.
    prefix : str, default="valid"
        The monitor's prefix; accuracy is read from ``{prefix}_acc`` where present.
    ax : matplotlib Axes or None
        Where to draw; a new figure if None.
    title : str or None, default=None
        The axes' title; None: "PID of the labels per epoch (validation split)" (the
        data named after ``prefix``), ``""``: none.

    Returns
    -------
    matplotlib Axes
        The left axes (bits); the right one (accuracy and gates), where drawn, is
        ``ax.figure.axes[-1]``.

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
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for name, label in _ATOMS.items():
        key = f"{prefix}_{name}"
        rows = [(row["epoch"], row[key]) for row in history if key in row]
        if rows:
            ax.plot(*zip(*rows), marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits")
    if title is None:
        title = f"PID of the labels per epoch ({_DATA.get(prefix, repr(prefix))})"
    if title:
        ax.set_title(title)
    acc_key = f"{prefix}_acc"
    right = {"accuracy": [(row["epoch"], row[acc_key]) for row in history if acc_key in row]}
    gates = sorted({key for row in history for key in row if key.startswith("gate_")})
    for key in gates:
        right[key] = [(row["epoch"], row[key]) for row in history if key in row]
    handles, names = ax.get_legend_handles_labels()
    right = {name: rows for name, rows in right.items() if rows}
    ax2 = None
    if right:
        ax2 = ax.twinx()
        for name, rows in right.items():
            style = dict(color="black", linestyle="--") if name == "accuracy" else \
                dict(linestyle=":", drawstyle="steps-post")
            (line,) = ax2.plot(*zip(*rows), label=name, **style)
            handles, names = handles + [line], names + [name]
        ax2.set_ylabel(" / ".join(["accuracy"] * ("accuracy" in right)
                                  + ["gate"] * bool(gates)))
    if handles:
        ncol = min(len(handles), 4)
        ax._skpid_legend_band = _legend_band(ax, math.ceil(len(handles) / ncol))
        # The curves keep the lower 1 - band of the axes; the legend takes the band.
        # Axes sharing the y axis (subplots(sharey=True)) share the limits: the curves
        # and legends of all of them count.
        siblings = ax.get_shared_y_axes().get_siblings(ax)
        band = max(getattr(a, "_skpid_legend_band", 0.0) for a in siblings)
        bits = [float(v) for a in siblings for line in a.get_lines()
                for v in np.ravel(line.get_ydata()) if np.isfinite(v)]
        low = min([0.0, *bits])
        high = max([1e-3, *bits]) * 1.05
        ax.set_ylim(low, low + (high - low) / (1 - band))
        if ax2 is not None:
            ax2.set_ylim(-0.05, -0.05 + 1.1 / (1 - band))
            ax2.set_yticks([0, 0.25, 0.5, 0.75, 1])
        ax.legend(handles, names, loc="upper center", ncol=ncol, fontsize="small",
                  frameon=False, borderaxespad=0.3)
    return ax


def _legend_band(ax, rows: int) -> float:
    """The share of the axes' height a legend of ``rows`` rows at the top needs."""
    height = ax.bbox.height / ax.figure.dpi  # inches, before any layout adjustment
    return min(0.5, (0.12 + 0.2 * rows) / max(height, 1e-3))
