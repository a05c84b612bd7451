"""The demo printed by ``python -m skpid demo``."""

import time

from . import datasets
from ._pid import pid, pid_from_pmf
from ._pid._result import ATOMS

_HEADER = f"{'':24s}" + "".join(f"{name:>16s}" for name in ATOMS)


def _row(label, result) -> str:
    return f"{label:24s}" + "".join(f"{getattr(result, name):16.6f}" for name in ATOMS)


def run_demo(seed: int = 0) -> None:
    print("Partial information decomposition (BROJA), in bits\n")
    print("Canonical gates (T, S uniform bits):")
    print(_HEADER)
    for name in datasets.GATES:
        print(_row(name, pid_from_pmf(datasets.gate_pmf(name))))

    print("\nSampled teacher/student pair (n=20000, 4 classes; teacher = clean class view")
    print("+ a task-irrelevant bit, student = noisier class view):")
    t, s, y = datasets.make_teacher_student(20000, random_state=seed)
    start = time.perf_counter()
    result = pid(t, s, y)
    elapsed = time.perf_counter() - start
    print(_HEADER)
    print(_row("teacher/student", result))
    print(f"\nI(Y;T) = {result.mi_teacher:.4f}, I(Y;S) = {result.mi_student:.4f}, "
          f"I(Y;T,S) = {result.mi_joint:.4f} bits; solved in {elapsed * 1e3:.1f} ms "
          f"(certified gap {result.gap:.1e} bits).")
    print("Knowledge left to distill Uni(Y:T\\S) = "
          f"{result.unique_teacher:.4f} bits; transferred Red(Y:T,S) = "
          f"{result.redundancy:.4f} bits.")
