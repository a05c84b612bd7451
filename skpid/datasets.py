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

    Returns
    -------
    p : ndarray of shape (n_t, n_s, n_y)
        Joint probabilities of (teacher, student, target), summing to 1.

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


def sample_pmf(p, n_samples: int, *, random_state=None):
    """Draw ``n_samples`` labelled triples (t, s, y) from a joint pmf ``p[t, s, y]``.

    The plug-in PID of the sample converges to ``pid_from_pmf(p)``: pair it with
    :func:`gate_pmf` or :func:`noisy_gate_pmf` for samples with a known answer.

    Parameters
    ----------
    p : array-like of shape (n_t, n_s, n_y)
        Joint probabilities (non-negative, summing to 1).
    n_samples : int
    random_state : int, RandomState instance or None

    Returns
    -------
    t, s, y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> from skpid.datasets import gate_pmf, sample_pmf
    >>> t, s, y = sample_pmf(gate_pmf("XOR"), 8, random_state=0)
    >>> bool(((t ^ s) == y).all())
    True
    """
    p = np.asarray(p, dtype=float)
    if p.ndim != 3 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError("p must be a 3-D array of probabilities summing to 1.")
    rng = check_random_state(random_state)
    flat = rng.choice(p.size, size=n_samples, p=p.ravel() / p.sum())
    return np.unravel_index(flat, p.shape)


def noisy_gate_pmf(name: str, noise: float) -> np.ndarray:
    """:func:`gate_pmf` with the target replaced, with probability ``noise``, by a
    uniformly random value: every atom moves into the interior (none exactly 0 or 1 bit).

    Parameters
    ----------
    name : str
        One of :data:`GATES`.
    noise : float in [0, 1]
        Probability that the target is replaced by a uniformly random value.

    Returns
    -------
    p : ndarray of shape (n_t, n_s, n_y)
        Joint probabilities of (teacher, student, target), summing to 1.

    Examples
    --------
    >>> noisy_gate_pmf("AND", 0.5)[:, :, 1]
    array([[0.0625, 0.0625],
           [0.0625, 0.1875]])
    """
    if not 0 <= noise <= 1:
        raise ValueError(f"noise must be in [0, 1]; got {noise!r}.")
    p = gate_pmf(name)
    p_ts = p.sum(axis=2, keepdims=True)
    return (1 - noise) * p + noise * p_ts / p.shape[2]


def make_gaussian_teacher_student(n_samples: int = 1000, *, n_teacher: int = 3,
                                  n_student: int = 3, n_shared: int = 2,
                                  noise: float = 1.0, random_state=None):
    """Jointly Gaussian representations T, S and a scalar target y with known PID.

    A latent vector (y, z_1, ..., z_{n_shared}) of independent standard normals is mapped
    by fixed random matrices (drawn from ``random_state``) into T and S, plus independent
    noise of standard deviation ``noise``; z is a task-irrelevant signal both see.  The
    exact covariance of (T, S, y) is returned, so the true PID is
    ``skpid._pid._gaussian.gaussian_pid(cov, n_teacher, n_student)`` (for this univariate
    target, redundancy = min(I(y;T), I(y;S))).

    Parameters
    ----------
    n_samples : int, default=1000
    n_teacher, n_student : int, default=3
        Dimensions of the teacher and student representations.
    n_shared : int, default=2
        Dimension of the task-irrelevant latent signal z that both representations see.
    noise : float, default=1.0
        Standard deviation of the independent observation noise.
    random_state : int, RandomState instance or None, default=None
        Seeds the mixing matrices and the samples.

    Returns
    -------
    teacher : ndarray of shape (n_samples, n_teacher)
    student : ndarray of shape (n_samples, n_student)
    y : ndarray of shape (n_samples,)
    cov : ndarray of shape (n_teacher + n_student + 1,) * 2
        Covariance of (teacher, student, y).

    Examples
    --------
    >>> T, S, y, cov = make_gaussian_teacher_student(500, random_state=0)
    >>> T.shape, S.shape, y.shape, cov.shape
    ((500, 3), (500, 3), (500,), (7, 7))
    """
    rng = check_random_state(random_state)
    n_latent = 1 + n_shared
    mixing = np.vstack([rng.normal(size=(n_teacher, n_latent)),
                        rng.normal(size=(n_student, n_latent)),
                        np.eye(1, n_latent)])  # the last row reads y off the latent
    latent = rng.normal(size=(n_samples, n_latent))
    d = n_teacher + n_student
    obs_noise = np.concatenate([np.full(d, float(noise)), [0.0]])
    data = latent @ mixing.T + rng.normal(size=(n_samples, d + 1)) * obs_noise
    cov = mixing @ mixing.T + np.diag(obs_noise ** 2)
    return data[:, :n_teacher], data[:, n_teacher:d], data[:, d], cov


def make_signal_nuisance(n_samples: int = 2000, *, n_classes: int = 4,
                         n_features: int = 8, teacher_signal: bool = True,
                         student_signal: bool = True, noise: float = 0.1,
                         random_state=None):
    """Continuous teacher/student activations built from a class signal and a nuisance.

    Each representation is a random embedding of the class (when its ``*_signal`` is
    True) or of an independent nuisance label with as many values (when False), plus
    Gaussian noise.  With well-separated clusters (small ``noise``) and
    ``n_clusters=n_classes``: a nuisance teacher has I(Y;T) = Red = UniT = 0 for every
    student (up to estimation bias), and a signal teacher with a signal student has
    Red = H(Y).

    Parameters
    ----------
    n_samples : int, default=2000
    n_classes : int, default=4
        Number of classes (and of nuisance values).
    n_features : int, default=8
        Dimension of each representation.
    teacher_signal, student_signal : bool, default=True
        Whether the representation embeds the class (True) or an independent nuisance
        label (False).
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to the embeddings.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    teacher, student : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> T, S, y = make_signal_nuisance(100, teacher_signal=False, random_state=0)
    >>> T.shape, S.shape, y.shape
    ((100, 8), (100, 8), (100,))
    """
    rng = check_random_state(random_state)
    y = rng.randint(n_classes, size=n_samples)

    def view(signal):
        labels = y if signal else rng.randint(n_classes, size=n_samples)
        centers = rng.normal(size=(n_classes, n_features))
        return centers[labels] + noise * rng.normal(size=(n_samples, n_features))

    return view(teacher_signal), view(student_signal), y
