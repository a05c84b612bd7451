"""The printed epoch table (``_printlog``): narrow at verbose=1, every column at
verbose=2, columns that never shift."""

import re

import numpy as np
from skorch.callbacks import Checkpoint, EpochScoring
from skorch.dataset import ValidSplit

from skpid import PIDDistiller, PIDMonitor
from skpid.distill._printlog import ESSENTIAL
from skpid.distill.models import MLP

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
                    batch_size=len(y), verbose=2, train_split=ValidSplit(4, stratified=True),
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
    small_net(method="kd", max_epochs=3, verbose=1, teacher_check="ignore",
              callbacks=[Late()]).fit(X, y)
    tables = parse_table(capsys.readouterr().out)
    assert len(tables) == 2
    assert "late_key" not in tables[0] and tables[1]["late_key"] == ["1.5000", ""]


# ---------------------------------------------------------------------------------------
# verbose=1: the essential columns, at most 120 characters; verbose=2: every column
def fit_printed(digits, teacher, verbose, tmp_path, **kw):
    """RID with a layer pair, its gates, KD on the logits, a PIDMonitor, a Checkpoint
    and a validation split: every column the distiller can add."""
    X, y = digits
    return PIDDistiller(MLP, teacher, method="rid", module__hidden=8,
                        teacher_layers=["body"], student_layers=["body"], pid_gate=True,
                        pid_gate_every=1, kd_weight=0.5, max_epochs=3, rounds=1,
                        random_state=0, teacher_check="ignore", verbose=verbose,
                        callbacks=[PIDMonitor(every=1, n_clusters=4),
                                   Checkpoint(dirname=str(tmp_path))],
                        **kw).fit(X, y)


def visible_lines(text):
    return [_ANSI.sub("", line) for line in text.splitlines()]


def test_verbose_1_prints_the_essential_columns_within_120_characters(
        digits, teacher_mlp, capsys, tmp_path):
    net = fit_printed(digits, teacher_mlp, 1, tmp_path)
    out = capsys.readouterr().out
    lines = visible_lines(out)
    assert max(map(len, lines)) <= 120, "\n".join(lines)
    (table,) = parse_table(out)
    assert list(table) == ["epoch", "train_ce", "train_distill", "train_kd", "valid_acc",
                           "valid_loss", "gate_0", "gate_kd", "cp", "dur"]
    assert table["epoch"] == ["1", "2", "3"]
    # the rest is recorded all the same
    row = net.history[-1]
    assert {"train_loss", "valid_ce", "valid_redundancy", "teacher_phase"} <= set(row)


def test_verbose_1_table_is_narrow_without_the_extras(digits, teacher_mlp, capsys):
    X, y = digits
    PIDDistiller(MLP, teacher_mlp, method="rid", module__hidden=8,
                 teacher_layers=["body"], student_layers=["body"], max_epochs=2,
                 teacher_check="ignore", verbose=1).fit(X, y)
    (table,) = parse_table(capsys.readouterr().out)
    assert list(table) == ["epoch", "train_ce", "train_distill", "valid_acc",
                           "valid_loss", "dur"]


def test_verbose_2_prints_every_column(digits, teacher_mlp, capsys, tmp_path):
    net = fit_printed(digits, teacher_mlp, 2, tmp_path)
    (table,) = parse_table(capsys.readouterr().out)
    recorded = {key for row in net.history for key in row
                if key != "batches" and not key.endswith(("_best", "_batch_count"))}
    shown = {f"event_{key}" if key == "cp" else key for key in table}
    assert shown == recorded
    # grouped: the epoch, the train_* keys, the valid_* keys, the others, events, dur
    keys = list(table)
    assert keys[0] == "epoch" and keys[-2:] == ["cp", "dur"]
    groups = [0 if k.startswith("train_") else 1 if k.startswith("valid_") else 2
              for k in keys[1:-2]]
    assert groups == sorted(groups)
    assert set(ESSENTIAL) <= set(keys)


def test_verbose_1_prints_the_columns_of_a_users_callback(data, capsys):
    X, y = data
    small_net(method="kd", max_epochs=2, verbose=1, train_split=ValidSplit(4),
              teacher_check="ignore",
              callbacks=[EpochScoring("neg_log_loss", name="valid_nll")]).fit(X, y)
    (table,) = parse_table(capsys.readouterr().out)
    assert "valid_nll" in table and "train_loss" not in table


def test_a_custom_sink_gets_the_verbose_1_table(data):
    from skpid.distill._printlog import DistillerPrintLog

    X, y = data
    lines = []
    small_net(method="rid", max_epochs=2, verbose=0,
              callbacks__print_log=DistillerPrintLog(sink=lines.append)).fit(X, y)
    table = parse_table("\n".join(lines))[0]
    assert "train_ce" in table and "train_filter_ce" not in table


def test_keys_ignored_hide_a_column(data, capsys):
    X, y = data
    small_net(method="kd", max_epochs=2, verbose=2, teacher_check="ignore",
              callbacks__print_log__keys_ignored=["dur", "train_loss"]).fit(X, y)
    (table,) = parse_table(capsys.readouterr().out)
    assert "dur" not in table and "train_loss" not in table and "train_ce" in table
