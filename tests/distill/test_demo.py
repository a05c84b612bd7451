"""The distillation demo behind ``python -m skpid demo`` (one epoch per fit here)."""

import io

from skpid._distill_demo import METHODS, run_distill_demo


def test_distill_demo_prints_a_complete_table():
    out = io.StringIO()
    rows = run_distill_demo(seed=0, epochs=1, out=out)
    assert [(t, m) for t, m, _ in rows] == [(t, m) for t in ("trained", "untrained")
                                            for m in METHODS]
    text = out.getvalue()
    assert "| teacher (acc) | method | test acc | Red | UniT | UniS | Syn | I(Y;T) |" in text
    assert text.count("| trained (") == len(METHODS)
    for _, _, r in rows:
        assert 0 <= r["acc"] <= 1 and r["red"] >= -1e-9 and r["uni_t"] >= -1e-9
