"""plot_pid_history (``_plotting``)."""

import numpy as np
import pytest

from skpid import PIDMonitor
from skpid.distill import plot_pid_history

from .test_monitor import fit_monitored


@pytest.fixture
def pyplot():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def test_plot_helper(digits, teacher_mlp, pyplot):
    net = fit_monitored(teacher_mlp, digits, PIDMonitor(n_clusters=4))
    ax = plot_pid_history(net)
    assert [line.get_label() for line in ax.get_lines()] == ["Red", "UniT", "UniS", "Syn"]


def _history(epochs=6, gates=("gate_0", "gate_kd")):
    """A history as PIDMonitor and pid_gate record it (plain dicts: the plot reads
    rows), with the first epoch's atoms at the top of their range."""
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "valid_acc": 0.5 + 0.05 * epoch,
               "valid_redundancy": 2.0 - 0.1 * epoch, "valid_unique_teacher": 0.1 * epoch,
               "valid_unique_student": 0.3, "valid_synergy": 0.05}
        row.update({gate: 1.0 for gate in gates})
        rows.append(row)
    return rows


def test_title_legend_and_labels_fit_the_saved_figure(pyplot, tmp_path):
    ax = plot_pid_history(_history())
    fig = ax.figure
    assert ax.get_title() == "PID of the labels per epoch (validation split)"
    fig.savefig(tmp_path / "history.png")  # draws the figure
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    # the axis labels and the title lie inside the saved figure
    for text in (ax.xaxis.label, ax.yaxis.label, fig.axes[-1].yaxis.label, ax.title):
        box = text.get_window_extent(renderer)
        assert (box.x0 >= figure_box.x0 and box.y0 >= figure_box.y0
                and box.x1 <= figure_box.x1 and box.y1 <= figure_box.y1), text.get_text()
    # the legend covers no point of any curve (the first epoch's included)
    legend = ax.get_legend().get_window_extent(renderer)
    for axes in fig.axes:
        for line in axes.get_lines():
            points = axes.transData.transform(np.asarray(line.get_xydata()))
            inside = [(x, y) for x, y in points if legend.contains(x, y)]
            assert not inside, (line.get_label(), inside)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["Red", "UniT", "UniS", "Syn", "accuracy", "gate_0", "gate_kd"]


def test_title_can_be_set_or_left_out(pyplot):
    assert plot_pid_history(_history(), prefix="valid", title="").get_title() == ""
    assert plot_pid_history(_history(), title="mine").get_title() == "mine"
    rows = [{k.replace("valid_", "test_"): v for k, v in row.items()} for row in _history()]
    assert "'test'" in plot_pid_history(rows, prefix="test").get_title()


def test_draws_into_a_given_axes(pyplot):
    fig, (left, right) = pyplot.subplots(1, 2)
    assert plot_pid_history(_history(gates=()), ax=right) is right
    assert len(fig.axes) == 3  # the two axes and the right one's twin
    assert right.get_legend() is not None and left.get_legend() is None


def test_importable_from_skpid():
    import skpid
    from skpid import plot_pid_history as top_level

    assert top_level is plot_pid_history and "plot_pid_history" in skpid.__all__


def test_axes_sharing_y_keep_every_curve_below_every_legend(pyplot, tmp_path):
    # the second panel's smaller values must not shrink the shared limits under the
    # first panel's curves (subplots(sharey=True), as in the gallery)
    high = _history()
    low = [{k: v / 4 if k.endswith(("redundancy", "unique_teacher")) else v
            for k, v in row.items()} for row in high]
    fig, axes = pyplot.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, rows in zip(axes, (high, low)):
        plot_pid_history(rows, ax=ax)
    fig.tight_layout()
    fig.savefig(tmp_path / "two.png")
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        legend = ax.get_legend().get_window_extent(renderer)
        for line in ax.get_lines():
            points = ax.transData.transform(np.asarray(line.get_xydata()))
            assert (points[:, 1] < legend.y0).all(), line.get_label()
            assert (points[:, 1] <= ax.bbox.y1).all()
