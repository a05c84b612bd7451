"""plot_pid_history (``_plotting``)."""

import pytest

from skpid import PIDMonitor
from skpid.distill import plot_pid_history

from .test_monitor import fit_monitored


def test_plot_helper(digits, teacher_mlp):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    net = fit_monitored(teacher_mlp, digits, PIDMonitor(n_clusters=4))
    ax = plot_pid_history(net)
    assert [line.get_label() for line in ax.get_lines()] == ["Red", "UniT", "UniS", "Syn"]
