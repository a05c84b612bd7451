"""Is there anything to distill? The task information of the teacher's representations,
tested against zero before training: the :class:`TeacherCheck` callback
(``PIDDistiller(teacher_check=...)``).

A teacher layer with I(Y;T) = 0, a *nuisance* teacher, has no knowledge of the task to
give: Red(Y: T, S) = Uni(Y: T\\S) = 0 for every student, and distilling it can only cost
accuracy. Each representation goes through the estimators' discretization (row
normalisation, PCA, KMeans: :class:`~skpid.KMeansDiscretizer`); I(Y;T) is the plug-in
mutual information of the codes and the labels, corrected by the mean of its values
under permuted labels (the estimators' permutation bias correction), and the same
permutations give its p-value.
"""

from __future__ import annotations

import warnings
import zlib
from typing import NamedTuple

import numpy as np
from skorch.callbacks import Callback
from torch.utils.data import Subset

from .._discretize import KMeansDiscretizer
from .._pid._information import entropy
from .._sampling import draw_seeds
from ..exceptions import NuisanceTeacherWarning
from ._data import dataset_targets
from ._losses import NoDistillation

#: Level of the permutation test: a representation whose p-value is above it is
#: indistinguishable from one with no task information.
LEVEL = 0.01
#: Label permutations per representation (p-values down to 1 / 200).
N_PERMUTATIONS = 199
#: Rows the check reads at most (a seeded subsample of the training data).
MAX_ROWS = 2000
#: Feature maps with more values per row are average-pooled to a coarser grid before
#: the discretization (``representations(max_features=...)``), which bounds the time and
#: memory of a measurement on wide maps (a 32×32×32 map is pooled to 32×4×4).
MAX_FEATURES = 512
#: Seed of every in-training measurement (rows, discretizations, permutations): fixed,
#: so that a measurement is a function of the representations, not of random_state.
SEED = 0


def subsample_rows(n_rows: int, random_state=0) -> np.ndarray:
    """The rows a measurement reads: all of them, or a seeded sorted subsample of
    :data:`MAX_ROWS`."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_rows, min(n_rows, MAX_ROWS), replace=False))


class TeacherInformation(NamedTuple):
    """Task information of one teacher representation."""

    bits: float        # I(Y;T), bias-corrected, in bits
    plugin_bits: float  # the plug-in estimate
    p_value: float      # permutation p-value of the plug-in estimate
    n_samples: int


def mutual_information_bits(codes: np.ndarray, labels: np.ndarray, n_codes: int,
                            n_labels: int) -> float:
    """Plug-in I(codes; labels) in bits from integer codes in ``[0, n_codes)`` and
    labels in ``[0, n_labels)``: H(C) + H(Y) − H(C, Y) of their joint frequencies.

    Examples
    --------
    >>> round(mutual_information_bits(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), 2, 2), 12)
    1.0
    >>> mutual_information_bits(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]), 2, 2)
    0.0
    """
    joint = np.bincount(codes * n_labels + labels, minlength=n_codes * n_labels)
    joint = joint.reshape(n_codes, n_labels) / len(codes)
    nats = entropy(joint.sum(axis=1)) + entropy(joint.sum(axis=0)) - entropy(joint)
    return max(float(nats / np.log(2)), 0.0)


def teacher_information(representation: np.ndarray, labels: np.ndarray, *,
                        n_clusters: int = 10, n_components: int = 5,
                        n_permutations: int = N_PERMUTATIONS,
                        random_state=0) -> TeacherInformation:
    """I(Y;T) of one representation, with its permutation bias correction and p-value.

    Parameters
    ----------
    representation : ndarray of shape (n_samples, ...)
        The teacher's activations (flattened per sample).
    labels : ndarray of shape (n_samples,)
        Class indices in ``[0, n_classes)``.
    n_clusters, n_components : int
        The discretization (:class:`~skpid.KMeansDiscretizer`).
    n_permutations : int
        Label permutations for the bias correction and the p-value.
    random_state : int, default=0
        Seeds the discretization and the permutations.

    Returns
    -------
    TeacherInformation
        ``p_value = (1 + #{permuted ≥ observed}) / (1 + n_permutations)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 300)
    >>> informative = np.eye(3)[y] + 0.3 * rng.normal(size=(300, 3))
    >>> teacher_information(informative, y).p_value < 0.01
    True
    >>> teacher_information(rng.normal(size=(300, 3)), y).p_value > 0.01
    True
    """
    disc_seed, perm_seed = draw_seeds(random_state, 2)
    codes = discretize(representation, n_clusters=n_clusters, n_components=n_components,
                       random_state=int(disc_seed))
    return information_test(codes, labels, n_permutations=n_permutations,
                            random_state=int(perm_seed))


def discretize(representation: np.ndarray, *, n_clusters: int = 10, n_components: int = 5,
               random_state=0) -> np.ndarray:
    """Codes ``0 … k-1`` of the rows of a representation (flattened per sample): the
    estimators' discretization (:class:`~skpid.KMeansDiscretizer`), renumbered so that
    every code occurs."""
    X = np.asarray(representation, dtype=np.float64).reshape(len(representation), -1)
    codes = KMeansDiscretizer(n_clusters=n_clusters, n_components=n_components,
                              random_state=random_state).fit_transform(X).ravel()
    return np.unique(codes, return_inverse=True)[1].ravel()


def information_test(codes: np.ndarray, labels: np.ndarray, *,
                     n_permutations: int = N_PERMUTATIONS,
                     random_state=0) -> TeacherInformation:
    """I(codes; labels) with its permutation bias correction and p-value (codes and
    labels: integers from 0)."""
    labels = np.asarray(labels, dtype=np.int64)
    n_labels = int(labels.max()) + 1
    n_codes = int(codes.max()) + 1
    observed = mutual_information_bits(codes, labels, n_codes, n_labels)
    rng = np.random.default_rng(random_state)
    permuted = np.array([mutual_information_bits(codes, rng.permutation(labels), n_codes,
                                                 n_labels) for _ in range(n_permutations)])
    p_value = (1 + np.count_nonzero(permuted >= observed - 1e-12)) / (1 + n_permutations)
    return TeacherInformation(bits=max(observed - float(permuted.mean()), 0.0),
                              plugin_bits=observed, p_value=float(p_value),
                              n_samples=len(labels))


class TeacherCodes:
    """The teacher's side of the measurements of one training call, computed once per
    (rows, teacher layer): the measured rows, each teacher representation's codes and
    its information test. The teacher is frozen, so one pass and one discretization serve
    the teacher check and every gate measurement on the same rows.

    ``data`` names the rows: ``"train"`` (the training data of the call) or
    ``"valid"`` (its validation split); within a call a name always means the same rows.
    """

    def __init__(self):
        self._rows = {}
        self._measured = {}

    def rows(self, data: str, n_rows: int) -> np.ndarray:
        """The (at most :data:`MAX_ROWS`) rows of ``data`` every measurement reads."""
        if data not in self._rows:
            self._rows[data] = subsample_rows(n_rows, SEED)
        return self._rows[data]

    def measure(self, net, data: str, dataset, layers: dict) -> dict:
        """``{name: (codes, TeacherInformation)}`` for ``layers`` (``{name: pair}``, a
        layer-pair index or None for the logits), running the teacher only for the
        layers not measured on these rows yet. Representations with a non-finite value
        are left out."""
        missing = {name: pair for name, pair in layers.items()
                   if (data, name) not in self._measured}
        if missing:
            subset = Subset(dataset, self.rows(data, len(dataset)))
            reps = net.representations(subset, pair=list(missing.values()),
                                        side="teacher", max_features=MAX_FEATURES)
            labels = encoded_labels(dataset_targets(subset))
            for name, (values, _) in zip(missing, reps):
                self._measured[data, name] = None
                if np.isfinite(values).all():
                    disc, perm = layer_seeds(name)
                    codes = discretize(values, random_state=disc)
                    self._measured[data, name] = (
                        codes, information_test(codes, labels, random_state=perm))
        return {name: self._measured[data, name] for name in layers
                if self._measured[data, name] is not None}


def layer_seeds(name: str) -> tuple:
    """The discretization and permutation seeds of the representation ``name`` (a
    teacher layer, or "logits"): the same in the check and in the gate."""
    disc, perm = draw_seeds(zlib.crc32(f"{SEED}:{name}".encode()), 2)
    return int(disc), int(perm)


def encoded_labels(labels) -> np.ndarray:
    """Labels as codes 0..k-1 (information does not depend on their names)."""
    return np.unique(np.asarray(labels), return_inverse=True)[1].ravel()


def teacher_codes(net) -> TeacherCodes:
    """The :class:`TeacherCodes` of ``net``'s current training call (made on first
    use; the net drops it at the end of the call)."""
    codes = getattr(net, "teacher_codes_", None)
    if codes is None:
        codes = net.teacher_codes_ = TeacherCodes()
    return codes


def logits_distilled_besides(net) -> bool:
    """Whether ``net`` distills the logits besides its method's representations:
    ``kd_weight``, or a feature criterion with a logit term (KD++)."""
    return net.kd_weight > 0 or net._method().distills_logits


def distilled_layers(net) -> dict:
    """``{name: pair}`` of the teacher representations ``net`` distills: each layer
    pair's teacher layer for a feature method, the logits for a logit method and for
    ``kd_weight``; none for ``method="none"``."""
    method = net._method()
    layers = {}
    if method.uses_features:
        for pair, layer in enumerate(net._layer_lists()[0]):
            layers.setdefault(layer or "logits", None if layer is None else pair)
    elif not isinstance(method, NoDistillation):
        layers["logits"] = None
    if logits_distilled_besides(net):
        layers.setdefault("logits", None)
    return layers


class TeacherCheck(Callback):
    """Before training, test the task information I(Y;T) of every teacher
    representation the net distills against zero; warn or raise for a *nuisance*
    teacher.

    Installed by :class:`~skpid.PIDDistiller` as the default callback
    ``"teacher_check"``: it follows the net's switch ``teacher_check`` (``"warn"``,
    ``"raise"`` or ``"ignore"``), as skorch's ``PrintLog`` follows ``verbose``;
    ``callbacks__teacher_check=None`` removes it. It measures the teacher layer of each
    layer pair for a feature method, and the logits for a logit method or
    ``kd_weight > 0`` (nothing for ``method="none"``), at the start of a new fit and
    again when a later call distills another teacher or other layers (after
    ``set_params`` of the teacher, its layers, the method or ``kd_weight``), on a
    seeded subsample of at most :data:`MAX_ROWS` training
    rows (maps wider than :data:`MAX_FEATURES` values pooled). The bias-corrected
    estimates, in bits, are the net's ``teacher_information_``.

    A representation whose permutation p-value is above :data:`LEVEL` is
    indistinguishable from one with no task information: ``teacher_check="warn"``
    issues a :class:`~skpid.exceptions.NuisanceTeacherWarning` naming the layer, the
    estimate and the p-value, and the net does not distill it (its term's weight is 0;
    the net's ``nuisance_layers_`` names it): distilling a nuisance teacher can only
    cost accuracy. ``"raise"`` raises a ``ValueError`` with that message.
    """

    def initialize(self):
        self.checked_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Measure, unless this fit measured the same teacher layers already."""
        layers = distilled_layers(net)
        key = (id(net.teacher), tuple(layers.items()), net.teacher_check)
        if key == self.checked_:
            return
        self.checked_ = key
        net.teacher_information_, net.nuisance_layers_ = {}, set()
        if net.teacher_check == "ignore" or not layers:
            return
        measured = teacher_codes(net).measure(net, "train", net.get_dataset(X, y), layers)
        for name, (_, info) in measured.items():
            net.teacher_information_[name] = info.bits
            if info.p_value > LEVEL:
                _report_nuisance(net.teacher_check, name, info)
                net.nuisance_layers_.add(name)


def _report_nuisance(mode: str, name: str, info: TeacherInformation) -> None:
    message = (
        f"teacher layer {name!r} holds no measurable task information: I(Y;T) = "
        f"{info.bits:.3f} bits (plug-in {info.plugin_bits:.3f}), permutation p-value "
        f"{info.p_value:.3f} > {LEVEL} on {info.n_samples} training rows. Distilling "
        "a nuisance teacher can only cost the student accuracy, so it is not "
        "distilled: check that the teacher is trained and sees the task's input, or "
        "pair another layer (teacher_check='ignore' distills it anyway).")
    if mode == "raise":
        raise ValueError(message)
    warnings.warn(message, NuisanceTeacherWarning, stacklevel=2)
