"""Distributions and samples with known PID, for demos, tests and sanity checks."""

import numpy as np
from sklearn.utils import check_random_state

# Each gate maps two independent uniform bits (a, b) to (t, s, y).
_GATES = {
    "XOR": lambda a, b: (a, b, a ^ b),
    "AND": lambda a, b: (a, b, a & b),
    "OR": lambda a, b: (a, b, a | b),
    "COPY": lambda a, b: (a, b, 2 * a + b),
    "RDN": lambda a, b: (a, a, a),
    "UNQ_T": lambda a, b: (a, b, a),
    "UNQ_S": lambda a, b: (a, b, b),
}

GATES = tuple(_GATES)
"""Names accepted by :func:`gate_pmf`."""

def gate_pmf(name: str) -> np.ndarray:
    """The joint pmf ``p[t, s, y]`` of a canonical two-input gate.

    Parameters
    ----------
    name : str
        One of :data:`GATES`: ``"XOR"`` (pure synergy, 1 bit), ``"AND"``/``"OR"``
        (0.311 bits redundancy, 0.5 bits synergy), ``"COPY"`` (y = (a, b): one unique bit
        each), ``"RDN"`` (t = s = y: 1 bit redundancy), ``"UNQ_T"``/``"UNQ_S"`` (1 unique bit).

    Examples
    --------
    >>> gate_pmf("XOR")[:, :, 1]
    array([[0.  , 0.25],
           [0.25, 0.  ]])
    """
    if name not in _GATES:
        raise ValueError(f"name must be one of {GATES}; got {name!r}.")
    cells = [_GATES[name](a, b) for a in (0, 1) for b in (0, 1)]
    shape = tuple(max(cell[i] for cell in cells) + 1 for i in range(3))
    p = np.zeros(shape)
    for cell in cells:
        p[cell] += 0.25
    return p


def make_teacher_student(n_samples: int = 5000, *, n_classes: int = 4,
                         teacher_noise: float = 0.1, student_noise: float = 0.4,
                         nuisance_values: int = 2, random_state=None):
    """Sample discrete labels of a teacher, a student and a task.

    The teacher sees the class through a noisy channel and also encodes a nuisance
    variable (independent of the class); the student is a noisier copy of the class.
    So the teacher holds task knowledge the student lacks (Uni(Y:T\\S) > 0), part of
    its content is task-irrelevant, and the student's knowledge is mostly redundant
    with the teacher's.

    Parameters
    ----------
    n_samples : int, default=5000
    n_classes : int, default=4
    teacher_noise, student_noise : float in [0, 1]
        Probability that the representation shows a uniformly random class instead.
    nuisance_values : int, default=2
        Number of values of the task-irrelevant part of the teacher.
    random_state : int, RandomState instance or None

    Returns
    -------
    t, s, y : ndarray of shape (n_samples,)
        Integer labels; ``t`` combines the teacher's class view and its nuisance.

    Examples
    --------
    >>> t, s, y = make_teacher_student(100, random_state=0)
    >>> t.shape, s.shape, y.shape
    ((100,), (100,), (100,))
    """
    rng = check_random_state(random_state)
    y = rng.randint(n_classes, size=n_samples)

    def noisy(noise):
        flip = rng.random_sample(n_samples) < noise
        return np.where(flip, rng.randint(n_classes, size=n_samples), y)

    nuisance = rng.randint(nuisance_values, size=n_samples)
    t = noisy(teacher_noise) * nuisance_values + nuisance
    s = noisy(student_noise)
    return t, s, y
