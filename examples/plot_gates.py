"""
PID of canonical gates
======================

The four BROJA atoms of the textbook two-input gates, printed as a table.
"""
# %%
from skpid import pid_from_pmf
from skpid.datasets import GATES, gate_pmf

for name in GATES:
    r = pid_from_pmf(gate_pmf(name))
    print(f"{name:6s} red={r.redundancy:.3f} uniT={r.unique_teacher:.3f} "
          f"uniS={r.unique_student:.3f} syn={r.synergy:.3f}")
