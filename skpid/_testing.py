"""Independent reference solvers for tests and benchmarks (optional dependencies).

Neither is used by the library itself: ``dit`` (``method="cone"``, which needs ``ecos``)
is the independent oracle of the test suite, and the cvxpy/Clarabel formulation is the
generic-convex-solver anchor of ``benchmarks/bench_pid_solver.py``.  Both return the BROJA
atoms in bits as a dict with keys ``redundancy``, ``unique_teacher``, ``unique_student``,
``synergy``.
"""

import numpy as np

_DIT_NODES = {
    "redundancy": ((0,), (1,)),
    "unique_teacher": ((0,),),
    "unique_student": ((1,),),
    "synergy": ((0, 1),),
}


def dit_broja_atoms(p: np.ndarray) -> dict:
    """BROJA atoms (bits) of ``p[t, s, y]`` computed by dit's cone solver."""
    import dit
    from dit.pid import PID_BROJA

    cells = np.argwhere(p > 0)
    outcomes = [tuple(int(v) for v in cell) for cell in cells]
    dist = dit.Distribution(outcomes, p[p > 0] / p.sum())
    result = PID_BROJA(dist, [[0], [1]], [2], method="cone")
    return {name: float(result.get_pi(node)) for name, node in _DIT_NODES.items()}


def cvxpy_broja_objective(p: np.ndarray, solver: str = "CLARABEL") -> float:
    """min_{Q in Delta_P} -H_Q(Y|T,S) in nats, as one vectorised cvxpy problem.

    The variable is q over the cells where P(t, y) > 0 and P(s, y) > 0; the marginal
    constraints and the (t, s)-marginal map are sparse matrices, and the objective is a
    single ``rel_entr`` (exponential cone) term.
    """
    import cvxpy as cp
    import scipy.sparse as sp
    import scipy.special

    n_t, n_s, n_y = p.shape
    p_ty, p_sy = p.sum(axis=1), p.sum(axis=0)
    t, s, y = np.nonzero((p_ty[:, None, :] > 0) & (p_sy[None, :, :] > 0))
    n = len(t)
    ones = np.ones(n)
    cols = np.arange(n)
    to_ty = sp.csr_matrix((ones, (t * n_y + y, cols)), shape=(n_t * n_y, n))
    to_sy = sp.csr_matrix((ones, (s * n_y + y, cols)), shape=(n_s * n_y, n))
    pair = t * n_s + s
    used, pair = np.unique(pair, return_inverse=True)
    to_ts = sp.csr_matrix((ones, (pair, cols)), shape=(len(used), n))
    q = cp.Variable(n, nonneg=True)
    # An explicit variable for Q(t, s) keeps the cone problem sparse.
    q_ts = cp.Variable(len(used))
    objective = cp.sum(cp.rel_entr(q, to_ts.T @ q_ts))
    constraints = [q_ts == to_ts @ q, to_ty @ q == p_ty.ravel(), to_sy @ q == p_sy.ravel()]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver=solver)
    if np.isfinite(problem.value) or q.value is None:
        return float(problem.value)
    # On sparse optima the solver's q_ts can round to 0 (or below) where q is a tiny
    # positive number, and cvxpy's re-evaluation then reports +inf although the solve
    # succeeded.  Evaluate the objective at the returned q with its own (t, s) marginal.
    q_val = np.maximum(q.value, 0.0)
    q_pair = (to_ts.T @ (to_ts @ q_val))
    return float(np.sum(scipy.special.rel_entr(q_val, q_pair)))
