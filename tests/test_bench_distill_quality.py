"""Smoke run of benchmarks/bench_distill_quality.py (its --quick budgets, one task)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_distill_quality.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))  # the script imports its sibling _timing
    try:
        spec = importlib.util.spec_from_file_location("bench_distill_quality", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    return module


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
