"""The printed epoch table (``_printlog``): columns that never shift."""

import re

import numpy as np
from skorch.dataset import ValidSplit
from skpid import PIDMonitor

from ._small import data, small_net  # noqa: F401 (data: a fixture)

# ---------------------------------------------------------------------------------------
# the printed table
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_table(text):
    """The tables of a PrintLog output, one per header: {header: [cells of its rows]},
    columns cut at the dash runs of the separator line under the header."""
    lines = [_ANSI.sub("", line) for line in text.splitlines() if line.strip()]
    seps = [i for i, line in enumerate(lines) if set(line) <= {"-", " "}]
    tables = []
    for k, i in enumerate(seps):
        end = seps[k + 1] - 1 if k + 1 < len(seps) else len(lines)
        spans = [m.span() for m in re.finditer(r"-+", lines[i])]
        tables.append({lines[i - 1][a:b].strip(): [row[a:b].strip()
                                                  for row in lines[i + 1:end]]
                       for a, b in spans})
    return tables


def test_printed_table_columns_match_their_headers(data, capsys):
    X, y = data
    X = np.concatenate([X, X + 0.01])
    y = np.concatenate([y, y])
    # rounds=2, ratio 1/2 over 4 epochs of one batch: epochs 1 and 3 are teacher phase
    # (no train_distill), epochs 2 and 4 student phase (no train_filter_ce); the monitor
    # measures epochs 3 and 4 only
    net = small_net(method="rid", rounds=2, teacher_ratio=0.5, max_epochs=4,
                    batch_size=len(y), verbose=1, train_split=ValidSplit(4, stratified=True),
                    callbacks=[PIDMonitor(every=3, n_clusters=2)]).fit(X, y)
    tables = parse_table(capsys.readouterr().out)
    assert len(tables) == 1  # every column declared before epoch 1: one header
    (table,) = tables
    for key in ("train_distill", "train_filter_ce", "valid_redundancy", "teacher_phase"):
        assert key in table, key
    assert len(table["epoch"]) == 4
    for i, row in enumerate(net.history):
        assert table["epoch"][i] == str(row["epoch"])
        for key, cells in table.items():
            if key in ("epoch", "dur"):
                continue
            if key in row:
                assert cells[i] == f"{row[key]:.4f}", (key, i)
            else:
                assert cells[i] == "", (key, i)
    assert table["train_distill"][0] == "" and table["train_filter_ce"][1] == ""
    assert table["valid_redundancy"][:2] == ["", ""] and table["valid_redundancy"][2]


def test_printed_table_reprints_its_header_for_an_undeclared_key(data, capsys):
    from skorch.callbacks import Callback

    class Late(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                net.history.record("late_key", 1.5)

    X, y = data
    small_net(method="kd", max_epochs=3, verbose=1, callbacks=[Late()]).fit(X, y)
    tables = parse_table(capsys.readouterr().out)
    assert len(tables) == 2
    assert "late_key" not in tables[0] and tables[1]["late_key"] == ["1.5000", ""]
