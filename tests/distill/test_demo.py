"""The distillation demo behind ``python -m skpid demo``."""

import io

import numpy as np

from skpid._distill_demo import METHODS, run_distill_demo

HEADER = "| teacher (acc) | method | test acc | Δ vs none | Red | UniT | UniS | Syn | I(Y;T) |"


def test_distill_demo_prints_a_complete_table():
    out = io.StringIO()
    rows = run_distill_demo(seed=0, epochs=2, seeds=1, out=out)
    labels = [label for label, _, _ in METHODS]
    assert [(t, m) for t, m, _ in rows] == [(t, m) for t in ("trained", "nuisance")
                                            for m in labels]
    text = out.getvalue()
    assert HEADER in text
    assert text.count("| trained (") == len(METHODS)
    for _, _, r in rows:
        assert len(r["acc"]) == 1 and 0 <= r["acc"][0] <= 1
        assert r["red"][0] >= -1e-9 and r["uni_t"][0] >= -1e-9


def test_distill_demo_tells_what_it_claims():
    """The full demo (as ``python -m skpid demo`` runs it, about 45 s): with the trained
    teacher every method beats no distillation; with the nuisance teacher (I(Y;T) near
    0) VID at the paper's weight falls and RID stays level."""
    out = io.StringIO()
    rows = {(t, m): r for t, m, r in run_distill_demo(seed=0, out=out)}
    # teacher_check tells the nuisance teacher apart before any training
    assert "teacher_check, trained teacher: no warning" in out.getvalue()
    # each layer the methods distill: KD's logits and the hidden layer
    for layer in ("logits", "net.body"):
        assert f"NuisanceTeacherWarning: teacher layer '{layer}' holds no measurable task " \
            "information" in out.getvalue().split("teacher_check, nuisance teacher:")[1]

    def acc(teacher, method):
        return np.mean(rows[(teacher, method)]["acc"])

    for method in ("default (kd)", "vid (α1=100)", "rid"):
        assert acc("trained", method) > acc("trained", "none") + 0.02, method
    # the nuisance teacher is not distilled (the check's verdict) ...
    for method in ("default (kd)", "vid (α1=100)", "rid"):
        assert acc("nuisance", method) == acc("nuisance", "none"), method
    # ... and distilled anyway it costs accuracy
    assert acc("nuisance", "kd, teacher_check='ignore'") < acc("nuisance", "none") - 0.02
    assert np.mean(rows[("nuisance", "none")]["mi_t"]) < 0.05
    assert np.mean(rows[("trained", "none")]["mi_t"]) > 0.5
    # distilling from the trained teacher moves task knowledge into the shared part
    assert np.mean(rows[("trained", "rid")]["red"]) > np.mean(rows[("trained", "none")]["red"])
