"""Shannon quantities of discrete joint distributions, in nats.

Every function takes a joint pmf ``p[t, s, y]`` (axes: teacher, student, target) and
uses the convention ``0 log 0 = 0``; callers convert to another base at the end.
"""

import numpy as np
from scipy.special import entr


def entropy(p: np.ndarray) -> float:
    """Entropy in nats of a pmf of any shape."""
    return float(entr(p).sum())


def conditional_entropy_y(p: np.ndarray, given: tuple) -> float:
    """H(Y | given) in nats, where ``given`` lists the source axes (0 = T, 1 = S).

    Computed as H(given, Y) - H(given) from the marginals of ``p``.
    """
    drop = tuple(axis for axis in (0, 1) if axis not in given)
    joint = p.sum(axis=drop) if drop else p
    return entropy(joint) - entropy(joint.sum(axis=-1))


def task_informations(p: np.ndarray) -> dict:
    """The mutual informations of a joint ``p[t, s, y]`` with the target, in nats."""
    h_y = entropy(p.sum(axis=(0, 1)))
    h_y_t = conditional_entropy_y(p, (0,))
    h_y_s = conditional_entropy_y(p, (1,))
    h_y_ts = conditional_entropy_y(p, (0, 1))
    return {
        "entropy_y": h_y,
        "h_y_given_t": h_y_t,
        "h_y_given_s": h_y_s,
        "h_y_given_ts": h_y_ts,
        "mi_teacher": h_y - h_y_t,
        "mi_student": h_y - h_y_s,
        "mi_joint": h_y - h_y_ts,
    }
