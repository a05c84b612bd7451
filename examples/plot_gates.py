"""
PID of canonical gates
======================

The four BROJA atoms of the textbook two-input gates: two independent fair bits
:math:`a, b`, the teacher sees :math:`a`, the student sees :math:`b` (both see :math:`a`
for ``RDN``), and the target :math:`Y` is a function of them.  Each gate isolates one atom
(``AND``/``OR`` mix redundancy and synergy), and the atoms add up to the mutual
informations.
"""
# %%
# The decompositions
# ------------------
import matplotlib.pyplot as plt
import numpy as np

from skpid import pid_from_pmf
from skpid.datasets import GATES, gate_pmf

ATOMS = ("redundancy", "unique_teacher", "unique_student", "synergy")
results = {name: pid_from_pmf(gate_pmf(name)) for name in GATES}
for name, r in results.items():
    print(f"{name:6s} red={r.redundancy:.3f} uniT={r.unique_teacher:.3f} "
          f"uniS={r.unique_student:.3f} syn={r.synergy:.3f}   "
          f"I(Y;T,S)={r.mi_joint:.3f}  certified gap {r.gap:.1e}")

# %%
# The identities hold for every gate: I(Y;T) = Red + UniT, I(Y;S) = Red + UniS.
for name, r in results.items():
    assert np.isclose(r.mi_teacher, r.redundancy + r.unique_teacher)
    assert np.isclose(r.mi_student, r.redundancy + r.unique_student)

# %%
# The atoms as a picture
# ----------------------
# Each bar is the task information :math:`I(Y;T,S)` of one gate, split into its atoms.
colors = {"redundancy": "tab:green", "unique_teacher": "tab:blue",
          "unique_student": "tab:orange", "synergy": "tab:purple"}
labels = {"redundancy": "Red (transferred)", "unique_teacher": "Uni T (to distill)",
          "unique_student": "Uni S", "synergy": "Syn"}
fig, ax = plt.subplots(figsize=(7, 3.5))
left = np.zeros(len(GATES))
for atom in ATOMS:
    values = np.array([getattr(results[name], atom) for name in GATES])
    ax.barh(GATES, values, left=left, color=colors[atom], label=labels[atom])
    left += values
ax.invert_yaxis()
ax.set_xlabel("bits")
ax.set_title("BROJA PID of the canonical gates")
ax.legend(loc="lower right", fontsize="small")
fig.tight_layout()
plt.show()
