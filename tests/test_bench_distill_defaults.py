"""Smoke run of benchmarks/bench_distill_defaults.py (``--quick``: one seed, 200 rows),
and its target checks on made-up results."""

import pytest
import torch

from .conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_distill_defaults")


def rows(variant, accs, seconds=1.0, teacher="trained", teacher_acc=0.9):
    return [dict(arch="mlp", size=200, teacher=teacher, variant=variant, seed=seed,
                 acc=acc, seconds=seconds, epochs=10, teacher_acc=teacher_acc)
            for seed, acc in enumerate(accs)]


def test_the_targets_fail_where_they_should(bench):
    none = rows("none", [0.50, 0.52, 0.54])
    good = rows("default", [0.55, 0.57, 0.59], seconds=2.0)
    _, checks = bench.summarize(none + good, ["mlp"], [200], ["trained"], ["default"])
    assert all(ok for *_, ok in checks)
    # one seed 4 points below its none, the mean below none, 4 times the time
    bad = rows("default", [0.46, 0.53, 0.55], seconds=4.0)
    _, checks = bench.summarize(none + bad, ["mlp"], [200], ["trained"], ["default"])
    failed = {name for _, name, _, ok in checks if not ok}
    assert failed == {"mean ≥ none", "mean ≥ none + 2 (teacher ≥ none + 5)",
                      "no seed below none − 3", "time ≤ 3 × none"}
    nuisance = rows("none", [0.5] * 3, teacher="nuisance", teacher_acc=0.1) + rows(
        "default", [0.48] * 3, teacher="nuisance", teacher_acc=0.1)
    _, checks = bench.summarize(nuisance, ["mlp"], [200], ["nuisance"], ["default"])
    assert [ok for _, name, _, ok in checks if name == "mean ≥ none − 1"] == [False]


def test_quick_run_prints_the_table_and_the_targets(bench, capsys):
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--archs", "mlp"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "| mlp | 200 | trained" in out and "| mlp | 200 | nuisance" in out
    assert "targets:" in out and "time ≤ 3 × none" in out
