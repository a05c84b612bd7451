"""Smoke run of benchmarks/bench_distill_quality.py (its --quick budgets, one task)."""

import pytest
import torch

from .conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_distill_quality")


def test_ablation_names_parse(bench):
    assert bench.method_spec("rid") == ("rid", {})
    method, params = bench.method_spec("rid+method__info_gate=False+variance_penalty=log")
    assert method == "rid"
    assert params == {"method__info_gate": False, "variance_penalty": "log"}
    assert bench.method_spec("rid-paper")[1]["method__variance_init"] == 5.0


def test_quick_run_gives_a_table_and_the_target_checks(bench):
    threads = torch.get_num_threads()
    try:
        results, t_acc, _ = bench.run(["tabular"], ["trained", "nuisance"],
                                      ["none", "fitnet", "vid", "vid-100", "rid"], seeds=2,
                                      quick=True, pid=False)
    finally:
        torch.set_num_threads(threads)
    assert len(results[("tabular", "nuisance", "rid")]) == 2
    table = bench.table(results, t_acc, ["tabular"], ["trained", "nuisance"],
                        ["none", "rid"], 2, 1.0, pid=False)
    assert "| tabular | nuisance (" in table and "| rid |" in table
    checks = {name: ok for _, name, _, ok in bench.targets(results, ["tabular"])}
    assert set(checks) == {"trained: rid - none >= 2",
                           "trained: rid - max(fitnet, vid) >= -1.5",
                           "nuisance: rid - none >= -1"}
    # a nuisance teacher's gate stays shut even in a 4-epoch run: RID is the student alone
    none = [r["acc"] for r in results[("tabular", "nuisance", "none")]]
    rid = [r["acc"] for r in results[("tabular", "nuisance", "rid")]]
    assert rid == none


def test_quick_gated_run_compares_each_gated_method_with_itself(bench):
    threads = torch.get_num_threads()
    methods = ["none", "fitnet", "kd", "fitnet" + bench.GATE, "kd" + bench.GATE]
    try:
        results, _, _ = bench.run(["tabular"], ["trained", "nuisance"], methods, seeds=2,
                                  quick=True, pid=False)
    finally:
        torch.set_num_threads(threads)
    assert bench.method_spec("rid+gate") == ("rid", {"pid_gate": True})
    table = bench.gated_table(results, ["tabular"], ["trained", "nuisance"], methods)
    assert "| tabular | nuisance | fitnet |" in table and "| tabular | trained | kd |" in table
    checks = {name for _, name, _, _ in bench.gate_targets(results, ["tabular"], methods)}
    assert checks == {"nuisance: fitnet+gate - none >= -1", "trained: fitnet+gate - fitnet >= -1",
                      "trained: kd+gate - kd >= -1"}
    # the nuisance teacher's gates are shut: both gated students are the student alone
    none = [r["acc"] for r in results[("tabular", "nuisance", "none")]]
    for method in ("fitnet+gate", "kd+gate"):
        rows = results[("tabular", "nuisance", method)]
        assert [r["acc"] for r in rows] == none
        assert [r["gate"] for r in rows] == [0.0, 0.0]
