"""The immutable result of a partial information decomposition."""

from dataclasses import dataclass, field, fields

import numpy as np

ATOMS = ("redundancy", "unique_teacher", "unique_student", "synergy")


@dataclass(frozen=True)
class PIDResult:
    """The PID of the task information I(Y; T, S) into four atoms.

    All information quantities are in units of ``log(base)`` (bits for ``base=2``).

    Attributes
    ----------
    redundancy : float
        Red(Y: T, S), the task knowledge both hold: "transferred knowledge".
    unique_teacher : float
        Uni(Y: T \\ S), the task knowledge only the teacher holds: "knowledge to distill".
    unique_student : float
        Uni(Y: S \\ T).
    synergy : float
        Syn(Y: T, S).
    mi_teacher, mi_student, mi_joint : float
        I(Y; T), I(Y; S) and I(Y; T, S).
    entropy_y : float
        H(Y).
    base : float
        Logarithm base of every quantity above.
    measure : str
        ``"broja"`` or ``"mmi"``.
    q : ndarray of shape (n_teacher_values, n_student_values, n_classes) or None
        For ``"broja"``, the optimal joint Q* of the BROJA problem.
    gap : float
        Certified bound on the error of every atom (0 for closed forms), in ``base`` units.
    converged : bool
        Whether the solver reached its tolerance.
    n_iter : int
        Iterations of the BROJA solver's interior-point method (0 where P itself is
        optimal, and for ``"mmi"``).

    Notes
    -----
    The repr prints an atom as 0 where it is within the certified ``gap`` of 0 (or
    below 1e-12 units per unit of H(Y): floating-point round-off, such as 3e-16 for an
    atom that is exactly 0), and adds ``converged=False`` where the solver stopped
    short of its tolerance. The fields hold the computed values.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import pid_from_pmf
    >>> xor = np.zeros((2, 2, 2))
    >>> for a in (0, 1):
    ...     for b in (0, 1):
    ...         xor[a, b, a ^ b] = 0.25
    >>> round(pid_from_pmf(xor).synergy, 6)
    1.0
    """

    redundancy: float
    unique_teacher: float
    unique_student: float
    synergy: float
    mi_teacher: float
    mi_student: float
    mi_joint: float
    entropy_y: float
    base: float
    measure: str
    q: np.ndarray | None = field(default=None, repr=False, compare=False)
    gap: float = 0.0
    converged: bool = True
    n_iter: int = 0

    def __post_init__(self):
        if self.q is not None:
            q = np.array(self.q, dtype=float)
            q.setflags(write=False)
            object.__setattr__(self, "q", q)

    def as_dict(self) -> dict:
        """The scalar fields as a plain dict (``q`` left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "q"}

    def __repr__(self) -> str:
        unit = {2: "bits", float(np.e): "nats", 10: "dits"}.get(self.base, f"log{self.base:g}")
        atoms = ", ".join(f"{name}={self._shown(getattr(self, name)):.6g}" for name in ATOMS)
        mis = ", ".join(f"{name}={self._shown(getattr(self, name), atom=False):.6g}"
                        for name in ("mi_teacher", "mi_student", "mi_joint"))
        state = "" if self.converged else ", converged=False"
        return (f"PIDResult({atoms}, {mis}, measure={self.measure!r}, "
                f"units={unit!r}{state})")

    def _shown(self, value: float, atom: bool = True) -> float:
        """``value`` as the repr prints it: 0 where it is round-off, within the
        certified ``gap`` of 0 (atoms only) or below 1e-12 ``base`` units per unit of
        H(Y), far below what any solver tolerance resolves. The fields keep the values
        computed."""
        limit = 1e-12 * max(1.0, abs(self.entropy_y))
        if atom and np.isfinite(self.gap):
            limit = max(limit, self.gap)
        return 0.0 if abs(value) <= limit else float(value)
