"""``plot_pid_history``: PID atoms, accuracy and gates over the epochs of a fit."""

from __future__ import annotations


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
