"""Distillation objectives: functional cores and ``nn.Module`` criteria.

Every criterion owns its learnable parts (regressors, filters, heads, variances), built
from the representation shapes probed on the first batch (:meth:`DistillationLoss.build`),
and returns a dict of named loss terms; :class:`~skpid.PIDDistiller` weights and adds them.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_flag, check_int, check_real

# Learned variances: sigma^2 = softplus(a) + _VAR_FLOOR, a initialised to _VAR_INIT
# (so sigma^2 starts near 5): the distance term starts small and grows as the variance
# is learned down; the floor keeps 1/sigma^2 bounded.
_VAR_FLOOR = 1e-3
_VAR_INIT = 5.0

VARIANCE_PENALTIES = ("fixed", "log", "square")


# ----------------------------------------------------------------------------------------
# checks of the settings (one per setting; the net uses the same ones)
def check_temperature(value, name: str = "temperature") -> float:
    """KD temperature: finite and > 0 (0 divides by zero, inf flattens every softmax)."""
    return check_real(value, name, low=0, low_open=True, expected="> 0 and finite")


def check_rounds(value, name: str = "rounds") -> int:
    return check_int(value, name, minimum=1)


def check_optional_rounds(value, name: str = "rounds"):
    """RID's R: None (rounds of ``round_epochs`` epochs) or an int >= 1."""
    return None if value is None else check_int(value, name, minimum=1)


def check_round_epochs(value, name: str = "round_epochs") -> float:
    return check_real(value, name, low=0, low_open=True, expected="> 0 and finite")


def check_teacher_ratio(value, name: str = "teacher_ratio") -> float:
    # 0 would never train the filters, 1 never the student
    return check_real(value, name, low=0, high=1, low_open=True, high_open=True,
                      expected="in the open interval (0, 1)")


def check_variance_penalty(value, name: str = "variance_penalty") -> str:
    return check_choice(value, name, VARIANCE_PENALTIES)


def check_filter_holdout(value, name: str = "filter_holdout") -> float:
    return check_real(value, name, low=0, high=1)


def check_variance_init(value, name: str = "variance_init") -> float:
    # the variances are float32 parameters: 1e30 leaves room for their arithmetic
    return check_real(value, name, low=0, high=1e30, low_open=True,
                      expected="in (0, 1e30]")


def check_gate_share(value, name: str) -> float:
    # 1 would hold out every row (gate_holdout) or never update the average (momentum)
    return check_real(value, name, low=0, high=1, high_open=True)


# ----------------------------------------------------------------------------------------
# functional cores
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float = 4.0) -> torch.Tensor:
    """Hinton et al. (2015): ``T² · KL(softmax(t/T) ‖ softmax(s/T))``, batch mean.

    The ``T²`` factor keeps gradient magnitudes comparable across temperatures.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[2.0, 0.0, -1.0]])
    >>> float(kd_loss(z, z))
    0.0
    """
    check_temperature(temperature)
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    return kl * temperature ** 2


def fitnet_loss(regressed: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """FitNets (Romero et al. 2015): mean squared error between regressed student
    features and the teacher's hint.

    Examples
    --------
    >>> import torch
    >>> float(fitnet_loss(torch.ones(2, 3), torch.zeros(2, 3)))
    1.0
    """
    return F.mse_loss(regressed, hint)


def vid_loss(mean: torch.Tensor, target: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """VID (Ahn et al. 2019): Gaussian negative log-likelihood of the teacher's features
    under a per-channel-variance Gaussian centred on the regressed student features,
    ``0.5 · mean(log σ² + (t − μ)² / σ²)`` (constant dropped).

    Examples
    --------
    >>> import torch
    >>> float(vid_loss(torch.zeros(4, 2), torch.zeros(4, 2), torch.ones(2)))
    0.0
    """
    var = _per_channel(variance, target)
    # float32 even where autocast ran the regressor in half precision
    mean, target = mean.float(), target.float()
    return 0.5 * torch.mean(torch.log(var) + (target - mean) ** 2 / var)


def rid_distance(student_filtered: torch.Tensor, teacher_filtered: torch.Tensor,
                 variance: torch.Tensor) -> torch.Tensor:
    """RID's closeness term ``mean((f_s(S) − f_t(T))² / σ²)`` over batch, channels and
    positions, with one variance per channel.

    Examples
    --------
    >>> import torch
    >>> float(rid_distance(torch.ones(3, 2), torch.zeros(3, 2), torch.full((2,), 2.0)))
    0.5
    """
    var = _per_channel(variance, teacher_filtered)
    # float32 even where autocast ran the filters in half precision
    diff = student_filtered.float() - teacher_filtered.float()
    return torch.mean(diff ** 2 / var)


def variance_penalty(variance: torch.Tensor, kind: str = "log") -> torch.Tensor:
    """RID's penalty on the learned variances: ``mean(log σ²)`` (``"log"``, the Gaussian
    negative log-likelihood), ``mean(σ⁴)`` (``"square"``, the research code's choice) or
    none (``"fixed"``: the variances are not learned).

    Examples
    --------
    >>> import torch
    >>> (float(variance_penalty(torch.ones(3))),
    ...  float(variance_penalty(torch.full((2,), 2.0), "square")))
    (0.0, 4.0)
    """
    kind = check_variance_penalty(kind, "kind")
    if kind == "log":
        return torch.mean(torch.log(variance))
    if kind == "fixed":
        return variance.new_zeros(())
    return torch.mean(variance ** 2)


def _per_channel(variance, like):
    # channels are axis 1: (N, C) vectors or (N, C, H, W) maps
    return variance.view(1, -1, *([1] * (like.dim() - 2)))


def _per_sample(teacher_shapes, student_shapes, n_classes):
    return (tuple(tuple(s)[1:] for s in teacher_shapes),
            tuple(tuple(s)[1:] for s in student_shapes), n_classes)


def _variance(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + _VAR_FLOOR


def _raw_for_variance(variance: float) -> float:
    """The raw parameter ``a`` with ``softplus(a) + _VAR_FLOOR == variance``."""
    v = max(float(variance) - _VAR_FLOOR, 1e-6)
    return v + math.log(-math.expm1(-v))  # inverse softplus, stable for large v


# ----------------------------------------------------------------------------------------
# building blocks made from probed shapes
def check_pair(t_shape, s_shape, t_name, s_name) -> None:
    """Raise a clear error when two representations cannot be paired."""
    t_dim, s_dim = len(t_shape), len(s_shape)
    ok = (t_dim == s_dim == 2) or (t_dim == s_dim == 4 and tuple(t_shape[2:]) == tuple(s_shape[2:]))
    if not ok:
        raise ValueError(
            f"cannot pair teacher layer {t_name!r} (shape {tuple(t_shape)[1:]} per sample) "
            f"with student layer {s_name!r} (shape {tuple(s_shape)[1:]} per sample): pairs "
            "must both be vectors (N, C) or both feature maps (N, C, H, W) with the same "
            "H × W. Choose other layers in teacher_layers / student_layers.")


def make_filter(in_shape, out_channels: int, hidden: int | None = None) -> nn.Module:
    """Linear–BN–ReLU–Linear for vectors; 1×1conv–BN–ReLU–1×1conv for feature maps.

    Examples
    --------
    >>> [type(m).__name__ for m in make_filter((8, 5), 3)]
    ['Linear', 'BatchNorm1d', 'ReLU', 'Linear']
    >>> [type(m).__name__ for m in make_filter((8, 5, 4, 4), 3)]
    ['Conv2d', 'BatchNorm2d', 'ReLU', 'Conv2d']
    """
    c_in = in_shape[1]
    hidden = hidden or out_channels
    if len(in_shape) == 2:
        return nn.Sequential(nn.Linear(c_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                             nn.Linear(hidden, out_channels))
    return nn.Sequential(nn.Conv2d(c_in, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(),
                         nn.Conv2d(hidden, out_channels, 1))


def make_head(in_shape, n_classes: int, pool: bool | int = True) -> nn.Module:
    """A classifier head on a (filtered) representation: ReLU–Linear, after an average
    pool of feature maps to a ``pool`` × ``pool`` grid (``True``: 1, global average
    pooling) or a flatten of the full map (``pool=False``, the research code).

    Examples
    --------
    >>> make_head((8, 5, 4, 4), 3, pool=2)[-1]
    Linear(in_features=20, out_features=3, bias=True)
    """
    if len(in_shape) == 2:
        return nn.Sequential(nn.ReLU(), nn.Linear(in_shape[1], n_classes))
    if pool is not False:
        size = min(int(pool), *in_shape[2:])  # True is 1
        return nn.Sequential(nn.AdaptiveAvgPool2d(size), nn.Flatten(), nn.ReLU(),
                             nn.Linear(in_shape[1] * size * size, n_classes))
    return nn.Sequential(nn.Flatten(), nn.ReLU(),
                         nn.Linear(int(math.prod(in_shape[1:])), n_classes))


def _standardizer(shape) -> nn.Module:
    """A BatchNorm without affine parameters: zero mean, unit variance per channel."""
    return (nn.BatchNorm1d(shape[1], affine=False) if len(shape) == 2
            else nn.BatchNorm2d(shape[1], affine=False))


# ----------------------------------------------------------------------------------------
# criteria
class DistillationLoss(nn.Module):
    """Base of the distillation criteria.

    Subclasses set ``uses_features`` (whether they need layer representations besides
    logits), build their learnable parts in :meth:`build` and return a dict of named
    terms from :meth:`forward`. Parameters of the teacher side (RID's teacher filters
    and heads) are listed by :meth:`teacher_side_parameters`; everything else trains with
    the student.

    ``forward(student_logits, teacher_logits, student_feats, teacher_feats, y, phase,
    **kwargs)`` receives the representations of each layer pair as lists (the teacher's
    computed without grad) and returns ``{"distill": tensor, ...}`` in the student phase;
    two-phase criteria (``two_phase = True``) return ``{"filter_ce": ..., "distance":
    ...}`` in the teacher phase. Every returned term is recorded in the net's history;
    ``student_terms`` and ``teacher_terms`` name them, so that the net's printed table
    has their columns from the first epoch.

    With ``PIDDistiller(pid_gate=True)``, a criterion that sets ``weights_pairs = True``
    receives ``pair_weights`` (a tensor with one gate per layer pair) in the student
    phase and weights each pair's term by it; for any other criterion the net scales
    the whole ``"distill"`` term by the mean gate. A feature criterion that also
    distills the teacher's logits (KD++'s KD term) sets ``distills_logits = True``: the
    teacher check and the gate then measure the logits too, and ``forward`` receives
    ``logit_weight`` (the logits' gate, 0 for logits the check found without task
    information) to weight that term by.

    Settings are checked by :meth:`check_params` against ``param_checks`` (a dict from
    constructor parameter to a function ``check(value, name)`` that raises a clear
    error): the constructors of the built-in criteria call it, and
    :class:`~skpid.PIDDistiller` calls it on ``method__*`` parameters before building
    the criterion, so that an error names ``method__rounds`` rather than ``rounds``.

    Examples
    --------
    >>> import torch
    >>> class CosineLoss(DistillationLoss):          # a user-defined method
    ...     uses_features = False
    ...     def forward(self, s_logits, t_logits, s_feats, t_feats, y, phase="student",
    ...                 **kwargs):
    ...         cos = torch.nn.functional.cosine_similarity(s_logits, t_logits)
    ...         return {"distill": (1 - cos).mean()}
    >>> z = torch.randn(4, 3)
    >>> float(CosineLoss()(z, z, [], [], None)["distill"]) < 1e-6
    True
    """

    uses_features = True
    two_phase = False
    #: The weight ``pid_weight="auto"`` gives this method's term.
    recommended_weight = 1.0
    #: Whether ``forward`` takes ``pair_weights`` (``pid_gate``'s gate per layer pair).
    weights_pairs = False
    #: Whether a feature criterion also distills the logits (and takes ``logit_weight``).
    distills_logits = False
    # names of the terms forward returns in each phase (declared for the net's table)
    student_terms = ("distill",)
    teacher_terms = ()
    param_checks: dict = {}

    @classmethod
    def check_params(cls, params: dict, prefix: str = "") -> None:
        """Check constructor parameters ``params`` (names without ``prefix``).

        Raises
        ------
        TypeError
            For a name the constructor does not take (unless it takes ``**kwargs``), or
            a value of the wrong type.
        ValueError
            For a value out of range. Messages name the parameter as ``prefix + name``.

        Examples
        --------
        >>> RIDLoss.check_params({"rounds": 0}, prefix="method__")
        Traceback (most recent call last):
        ...
        ValueError: method__rounds must be an int >= 1; got 0.
        """
        accepted = _constructor_params(cls)
        for key, value in params.items():
            if accepted is not None and key not in accepted:
                raise TypeError(
                    f"{prefix}{key}: {cls.__name__} has no parameter {key!r}; its "
                    f"parameters are {', '.join(sorted(accepted)) or '(none)'}.")
            check = cls.param_checks.get(key)
            if check is not None:
                check(value, prefix + key)

    def build(self, teacher_shapes: Sequence, student_shapes: Sequence, n_classes: int,
              names: Sequence = ()) -> None:
        """Create the learnable parts from the probed shapes ``(batch, ...)``; the base
        class only remembers the per-sample shapes."""
        self.built_shapes_ = _per_sample(teacher_shapes, student_shapes, n_classes)

    def is_built_for(self, teacher_shapes, student_shapes, n_classes) -> bool:
        """Whether :meth:`build` already ran for these shapes (a warm start keeps parts)."""
        return getattr(self, "built_shapes_", None) == _per_sample(
            teacher_shapes, student_shapes, n_classes)

    def teacher_side_parameters(self) -> list:
        return []

    def prepare(self, data) -> None:
        """Called by the net once at the start of ``fit``, before the first step, for
        criteria that need the whole training set (class means, a memory bank).

        ``data`` has ``n_rows``, ``n_classes``, ``y`` (the encoded training labels, a
        LongTensor on the criterion's device) and ``teacher_features()`` (the teacher's
        representation of every training row at each layer pair: a list of tensors;
        computing it costs a pass of the teacher over the data). The base class needs
        nothing.
        """

    def phase(self, steps_per_epoch: int, max_epochs: int) -> str:
        """The phase of the next optimizer update, with ``steps_per_epoch`` updates an
        epoch and ``max_epochs`` planned: ``"student"`` for one-phase criteria (see
        :class:`RIDLoss`)."""
        return "student"

    def count_update(self, phase: str) -> None:
        """Count an optimizer update of ``phase``: the schedule's position (kept by
        two-phase criteria, in their state, so that it survives ``partial_fit`` calls,
        ``save_params`` and checkpoints)."""

    def student_side_parameters(self) -> list:
        teacher_side = {id(p) for p in self.teacher_side_parameters()}
        return [p for p in self.parameters() if id(p) not in teacher_side]

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", **kwargs) -> dict:
        raise NotImplementedError


class NoDistillation(DistillationLoss):
    """``method="none"``: cross-entropy only (the distance term is zero)."""

    uses_features = False

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", **kwargs):
        return {"distill": student_logits.new_zeros(())}


class KDLoss(DistillationLoss):
    """``method="kd"``: Hinton's logit distillation with a temperature.

    Examples
    --------
    >>> import torch
    >>> crit = KDLoss(temperature=2.0)
    >>> z = torch.randn(4, 3)
    >>> float(crit(z, z, [], [], None)["distill"])
    0.0
    """

    uses_features = False
    param_checks = {"temperature": check_temperature}

    def __init__(self, temperature: float = 4.0):
        super().__init__()
        self.check_params({"temperature": temperature})
        self.temperature = temperature

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", **kwargs):
        return {"distill": kd_loss(student_logits, teacher_logits, self.temperature)}


class _RegressorLoss(DistillationLoss):
    """Shared parts of FitNets and VID: one regressor student → teacher per layer pair."""

    weights_pairs = True

    def build(self, teacher_shapes, student_shapes, n_classes, names=()):
        """One regressor (student features → teacher channels) per layer pair."""
        super().build(teacher_shapes, student_shapes, n_classes)
        self.regressors = nn.ModuleList(
            make_filter(s, t[1]) for t, s in zip(teacher_shapes, student_shapes))


class FitNetLoss(_RegressorLoss):
    """``method="fitnet"``: MSE between regressed student features and the teacher's
    (summed over layer pairs)."""

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", pair_weights=None, **kwargs):
        terms = [fitnet_loss(r(s), t.detach())
                 for r, s, t in zip(self.regressors, student_feats, teacher_feats)]
        return {"distill": _weighted_sum(terms, pair_weights)}


class VIDLoss(_RegressorLoss):
    """``method="vid"``: variational information distillation, a Gaussian with learned
    per-channel variance (summed over layer pairs)."""

    def build(self, teacher_shapes, student_shapes, n_classes, names=()):
        """The regressors, and one learned per-channel variance per layer pair."""
        super().build(teacher_shapes, student_shapes, n_classes)
        self.raw_variances = nn.ParameterList(
            nn.Parameter(torch.full((t[1],), _VAR_INIT)) for t in teacher_shapes)

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", pair_weights=None, **kwargs):
        terms = [vid_loss(r(s), t.detach(), _variance(a)) for r, a, s, t in
                 zip(self.regressors, self.raw_variances, student_feats, teacher_feats)]
        return {"distill": _weighted_sum(terms, pair_weights)}


class RIDLoss(DistillationLoss):
    """``method="rid"``: Redundant Information Distillation (Dissanayake et al. 2025),
    with an information gate.

    Per layer pair k: a teacher filter ``f_t,k`` with a classifier head ``g_k``, a student
    filter ``f_s,k`` and per-channel variances ``σ²_k``. Two phases alternate (the
    schedule is run by :class:`~skpid.PIDDistiller`):

    - teacher phase: ``Σ_k CE(g_k(f_t,k(T_k)), y) + [after the first round] Σ_k D_k``,
      updating teacher filters and heads only (with ``concurrent=True`` the student
      also takes a cross-entropy step on each of these batches);
    - student phase: the distiller adds ``pid_weight · Σ_k w_k (penalty(σ²_k) + D_k)``
      to the student's cross-entropy, updating student, student filters and (where
      learned) variances;

    with ``D_k = mean((f_s,k(S_k) − f_t,k(T_k))² / σ²_k)`` and ``w_k`` the information
    gate (1 with ``info_gate=False``).

    The information gate: RID distills what the filtered teacher knows about Y. A share
    ``gate_holdout`` of the training rows (chosen by a hash of the input row, so stable
    across epochs, batches and folds) is kept out of the heads' fit; on those rows the
    head's cross-entropy ``CE_k`` is tracked (a moving average over teacher-phase
    batches) and ``w_k = clip(1 − CE_k / H(Y), 0, 1)``, ``H(Y)`` the entropy of the
    training labels seen. This estimates the share of the label entropy the filtered
    teacher explains on rows it was not fitted on: 0 for a nuisance teacher (its head
    can only memorise), near 1 for a teacher that predicts Y well. Before the first
    teacher phase has measured it, the gate is 0.

    The research code's RID is ``variance_penalty="square", variance_init=5.0,
    normalize=False, info_gate=False, concurrent=False, pool_heads=False``.

    The schedule: rounds of ``round_epochs`` epochs, however long training runs (it
    stops early by default, or goes on with ``partial_fit``), each starting with its
    teacher phase; ``rounds=R`` lays R rounds over ``max_epochs`` instead, the paper's
    layout. The position counts optimizer updates over every call since the criterion
    was built.

    Parameters
    ----------
    rounds : int or None, default=None
        None: rounds of ``round_epochs`` epochs. R: R teacher/student alternations
        over ``max_epochs`` (the paper's R = 10).
    round_epochs : float, default=10.0
        The length of a round in epochs (> 0), where ``rounds`` is None.
    teacher_ratio : float, default=0.25
        ρ, the share of each round spent in the teacher phase.
    variance_penalty : {"fixed", "log", "square"}, default="fixed"
        ``"fixed"``: the variances are not learned (σ² = ``variance_init``); with
        standardised targets (``normalize``) the distance has a known scale.
        ``"log"``: learned, penalty mean log σ² (the Gaussian negative log-likelihood:
        σ² follows the distance, so the pull grows as the distance shrinks).
        ``"square"``: learned, penalty mean σ⁴, as in the authors' research code.
    variance_init : float, default=1.0
        σ² (fixed) or its starting value (learned); > 0. With standardised targets, 1
        weighs the distance as a unit-variance Gaussian would; the research code starts
        learned variances at softplus(5) ≈ 5.
    pool_heads : bool, default=True
        Heads on feature maps average-pool to ``head_pool_size`` × ``head_pool_size``
        first (small heads); ``False`` flattens the full map as the research code does
        (large linear layers for big maps).
    head_pool_size : int, default=2
        Grid the heads pool feature maps to (1: global average pooling).
    filter_holdout : float, default=0.0
        Fraction of training rows (by the row hash) on which alone the heads'
        cross-entropy is computed; 0 uses all rows but the gate's share.
    normalize : bool, default=True
        Standardise the teacher-filtered targets per channel (a BatchNorm without affine
        parameters, whose running statistics serve in the student phase), so that the
        distance does not depend on the scale of the teacher's activations.
    info_gate : bool, default=True
        Weight each pair's distillation term by its information gate (above).
    gate_holdout : float, default=0.3
        Share of training rows kept out of the heads' fit to measure the gate, in
        [0, 1); 0 measures the gate on the heads' own training rows (optimistic).
    gate_momentum : float, default=0.8
        Momentum in [0, 1) of the moving average of the held-out cross-entropy.
    concurrent : bool, default=True
        The student also takes a cross-entropy step (plus KD where ``kd_weight > 0``;
        no distance, the filters are moving) on each teacher-phase batch, so that the
        teacher phases cost the student no steps. ``False``: the research code's
        alternation, the student idle in teacher phases.
    """

    two_phase = True
    # The paper's alpha_1: with the gate, normalised targets and fixed variances it gains
    # with trained teachers and stays level under nuisance ones (benchmarks/
    # bench_distill_quality.py).
    recommended_weight = 10.0
    student_terms = ("distill", "distance", "gate")
    weights_pairs = True
    teacher_terms = ("filter_ce", "distance")
    param_checks = {"rounds": check_optional_rounds, "round_epochs": check_round_epochs,
                    "teacher_ratio": check_teacher_ratio,
                    "variance_penalty": check_variance_penalty,
                    "variance_init": check_variance_init, "pool_heads": check_flag,
                    "head_pool_size": check_rounds, "filter_holdout": check_filter_holdout,
                    "normalize": check_flag, "info_gate": check_flag,
                    "gate_holdout": check_gate_share, "gate_momentum": check_gate_share,
                    "concurrent": check_flag}

    def __init__(self, rounds: int | None = None, teacher_ratio: float = 0.25,
                 variance_penalty: str = "fixed", variance_init: float = 1.0,
                 pool_heads: bool = True, head_pool_size: int = 2,
                 filter_holdout: float = 0.0, normalize: bool = True,
                 info_gate: bool = True, gate_holdout: float = 0.3,
                 gate_momentum: float = 0.8, concurrent: bool = True,
                 round_epochs: float = 10.0):
        super().__init__()
        RIDLoss.check_params(dict(
            rounds=rounds, round_epochs=round_epochs, teacher_ratio=teacher_ratio,
            variance_penalty=variance_penalty,
            variance_init=variance_init, pool_heads=pool_heads,
            head_pool_size=head_pool_size, filter_holdout=filter_holdout,
            normalize=normalize, info_gate=info_gate, gate_holdout=gate_holdout,
            gate_momentum=gate_momentum, concurrent=concurrent))
        self.rounds = rounds
        self.round_epochs = round_epochs
        self.teacher_ratio = teacher_ratio
        self.variance_penalty = variance_penalty
        self.variance_init = variance_init
        self.pool_heads = pool_heads
        self.head_pool_size = head_pool_size
        self.filter_holdout = filter_holdout
        self.normalize = normalize
        self.info_gate = info_gate
        self.gate_holdout = gate_holdout
        self.gate_momentum = gate_momentum
        self.concurrent = concurrent
        # The schedule's position: optimizer updates so far, and those of the student
        # phase (state, not a setting: saved with the criterion)
        self.register_buffer("updates", torch.zeros(2, dtype=torch.long))

    @property
    def needs_row_hash(self) -> bool:
        """Whether the teacher phase needs the rows' hashes (held-out shares)."""
        return self.filter_holdout > 0 or (self.info_gate and self.gate_holdout > 0)

    def build(self, teacher_shapes, student_shapes, n_classes, names=()):
        """Teacher filters with their heads, student filters, per-channel variances and
        the gate's state, one of each per layer pair."""
        super().build(teacher_shapes, student_shapes, n_classes)
        self.teacher_filters = nn.ModuleList(
            nn.Sequential(*make_filter(t, t[1]),
                          *([_standardizer(t)] if self.normalize else []))
            for t in teacher_shapes)
        pool = self.head_pool_size if self.pool_heads else False
        self.heads = nn.ModuleList(make_head(t, n_classes, pool) for t in teacher_shapes)
        self.student_filters = nn.ModuleList(
            make_filter(s, t[1]) for t, s in zip(teacher_shapes, student_shapes))
        raw = _raw_for_variance(self.variance_init)
        learned = self.variance_penalty != "fixed"
        self.raw_variances = nn.ParameterList(
            nn.Parameter(torch.full((t[1],), raw), requires_grad=learned)
            for t in teacher_shapes)
        # gate state: held-out cross-entropy per pair (moving average; -1: not measured
        # yet) and the counts of the labels seen in teacher phases
        self.register_buffer("gate_ce", torch.full((len(teacher_shapes),), -1.0))
        self.register_buffer("label_counts", torch.zeros(n_classes))

    def gates(self) -> torch.Tensor:
        """The information gate ``w_k`` of each layer pair (ones without ``info_gate``).

        Examples
        --------
        >>> crit = RIDLoss()
        >>> crit.build([(8, 4)], [(8, 3)], n_classes=2)
        >>> crit.gates()  # nothing measured yet: closed
        tensor([0.])
        """
        if not self.info_gate:
            return torch.ones(len(self.raw_variances), device=self.gate_ce.device)
        counts = self.label_counts
        if counts.sum() <= 0:
            return torch.zeros_like(self.gate_ce)
        p = counts[counts > 0] / counts.sum()
        entropy = (-(p * p.log()).sum()).clamp_min(1e-6)
        gate = (1 - self.gate_ce / entropy).clamp(0, 1)
        return torch.where(self.gate_ce < 0, torch.zeros_like(gate), gate)

    def teacher_side_parameters(self):
        if not hasattr(self, "heads"):  # not built yet
            return []
        return list(self.teacher_filters.parameters()) + list(self.heads.parameters())

    def round_length(self, steps_per_epoch: int, max_epochs: int) -> float:
        """Optimizer updates per round: ``round_epochs`` epochs, or ``max_epochs / R``
        with ``rounds=R``."""
        if self.rounds is None:
            return max(self.round_epochs * steps_per_epoch, 1.0)
        return max(max_epochs * steps_per_epoch / self.rounds, 1.0)

    def phase(self, steps_per_epoch: int, max_epochs: int) -> str:
        """The phase of the next update: the position counts every update of every
        ``fit`` / ``partial_fit`` call since the criterion was built."""
        length = self.round_length(steps_per_epoch, max_epochs)
        return rid_phase(int(self.updates[0]), length, 1, self.teacher_ratio)[0]

    def count_update(self, phase: str) -> None:
        self.updates[0] += 1
        if phase == "student":
            self.updates[1] += 1

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", row_hash=None, pair_weights=None, **kwargs):
        if phase == "teacher":
            # the distance joins the teacher phase once the student filters have moved
            with_distance = bool(self.updates[1] > 0)
            return self._teacher_terms(student_feats, teacher_feats, y, with_distance,
                                       row_hash)
        # Teacher filters are fixed in the student phase: eval mode keeps their BatchNorm
        # statistics from drifting with student batches.
        with _eval(self.teacher_filters), torch.no_grad():
            targets = [f(t) for f, t in zip(self.teacher_filters, teacher_feats)]
        gates = self.gates()
        # pid_gate's weights apply on top of the information gate
        weights = gates if pair_weights is None else gates * pair_weights.to(gates)
        distances, terms = [], []
        for f_s, a, s, target, w in zip(self.student_filters, self.raw_variances,
                                        student_feats, targets, weights):
            var = _variance(a)
            distance = rid_distance(f_s(s), target, var)
            distances.append(distance)
            terms.append(w * (distance + variance_penalty(var, self.variance_penalty)))
        return {"distill": torch.stack(terms).sum(),
                "distance": torch.stack(distances).sum(), "gate": gates.mean()}

    def _teacher_terms(self, student_feats, teacher_feats, y, with_distance, row_hash):
        fit_rows, gate_rows = self._row_shares(y, row_hash)
        if self.info_gate:
            with torch.no_grad():
                self.label_counts += torch.bincount(
                    y, minlength=len(self.label_counts)).to(self.label_counts)
        with _eval(self.student_filters), torch.no_grad():
            student_targets = [f(s.detach()) for f, s in zip(self.student_filters, student_feats)]
        ces, distances = [], []
        for k, (f_t, g, a, t, s) in enumerate(zip(self.teacher_filters, self.heads,
                                                  self.raw_variances, teacher_feats,
                                                  student_targets)):
            filtered = f_t(t)
            logits = g(filtered)
            if fit_rows is None:
                ces.append(F.cross_entropy(logits, y))
            elif fit_rows.any():
                ces.append(F.cross_entropy(logits[fit_rows], y[fit_rows]))
            else:  # no row of the heads' share in this batch: they learn nothing from it
                ces.append(logits.sum() * 0.0)
            if self.info_gate:
                self._track_gate(k, logits.detach(), y, gate_rows, fit_rows)
            if with_distance:
                distances.append(rid_distance(s, filtered, _variance(a).detach()))
        terms = {"filter_ce": torch.stack(ces).sum()}
        terms["distance"] = (torch.stack(distances).sum() if distances
                             else terms["filter_ce"].new_zeros(()))
        return terms

    def _row_shares(self, y, row_hash):
        """Rows the heads fit on (None: all) and rows the gate is measured on."""
        if row_hash is None:
            return None, None
        u = row_hash.to(y.device)
        fit = (u < self.filter_holdout if self.filter_holdout > 0
               else torch.ones_like(u, dtype=torch.bool))
        gate = None
        if self.info_gate and self.gate_holdout > 0:
            gate = u >= 1 - self.gate_holdout
            fit = fit & ~gate
        return fit, gate

    @torch.no_grad()
    def _track_gate(self, k, logits, y, gate_rows, fit_rows) -> None:
        if gate_rows is None:  # no held-out share: the heads' own rows (optimistic)
            rows = fit_rows
        elif gate_rows.any():
            rows = gate_rows
        else:
            return
        ce = (F.cross_entropy(logits, y) if rows is None
              else F.cross_entropy(logits[rows], y[rows])).float()
        old, m = self.gate_ce[k], self.gate_momentum
        self.gate_ce[k] = torch.where(old < 0, ce, m * old + (1 - m) * ce)


class TEDLoss(RIDLoss):
    """``method="ted"``: RID with a single round (teacher filters trained first, then
    fixed while the student learns): the teacher phase is the first ``teacher_ratio``
    of ``round_epochs`` epochs, the student phase everything after. Same parameters as
    :class:`RIDLoss` except ``rounds``."""

    def __init__(self, teacher_ratio: float = 0.25, variance_penalty: str = "fixed",
                 variance_init: float = 1.0, pool_heads: bool = True,
                 head_pool_size: int = 2, filter_holdout: float = 0.0,
                 normalize: bool = True, info_gate: bool = True,
                 gate_holdout: float = 0.3, gate_momentum: float = 0.8,
                 concurrent: bool = True, round_epochs: float = 10.0):
        super().__init__(rounds=None, round_epochs=round_epochs, teacher_ratio=teacher_ratio,
                         variance_penalty=variance_penalty, variance_init=variance_init,
                         pool_heads=pool_heads, head_pool_size=head_pool_size,
                         filter_holdout=filter_holdout, normalize=normalize,
                         info_gate=info_gate, gate_holdout=gate_holdout,
                         gate_momentum=gate_momentum, concurrent=concurrent)

    def phase(self, steps_per_epoch: int, max_epochs: int) -> str:
        """The teacher phase once, at the start; the student phase after it."""
        length = self.round_length(steps_per_epoch, max_epochs)
        return "teacher" if self.updates[0] < self.teacher_ratio * length else "student"


def _weighted_sum(terms: list, weights) -> torch.Tensor:
    """Σ_k w_k · term_k (plain sum without weights)."""
    stacked = torch.stack(terms)
    return stacked.sum() if weights is None else (stacked * weights.to(stacked)).sum()


@functools.lru_cache(maxsize=None)
def _constructor_params(cls):
    """Names a criterion's constructor takes; None where it also takes ``**kwargs``."""
    if cls.__init__ is nn.Module.__init__:  # no constructor of its own: no parameters
        return frozenset()
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(name for name, p in params.items()
                     if name != "self" and p.kind is not p.VAR_POSITIONAL)


class _eval:
    """Context: put a module in eval mode (if ``active``), restore its mode on exit."""

    def __init__(self, module: nn.Module, active: bool = True):
        self.module = module
        self.active = active

    def __enter__(self):
        self.was_training = self.module.training
        if self.active:
            self.module.eval()

    def __exit__(self, *exc):
        if self.active:
            self.module.train(self.was_training)


def rid_phase(step: int, total_steps: int, rounds: int, teacher_ratio: float):
    """Phase of training step ``step`` (0-based) of ``total_steps`` under RID's schedule.

    Training progress is split into ``rounds`` equal rounds; the first ``teacher_ratio``
    of each round is the teacher phase. Progress is counted in optimizer steps, not
    epochs, so ρ·E/R need not be an integer (research-code quirk 3) and short runs still
    alternate; when ρ·E/R is an integer the phases fall on epoch boundaries as in the paper.

    Returns
    -------
    phase : {"teacher", "student"}
    round : int

    Examples
    --------
    >>> [rid_phase(i, 8, rounds=2, teacher_ratio=0.25)[0][0] for i in range(8)]
    ['t', 's', 's', 's', 't', 's', 's', 's']
    """
    check_rounds(rounds)
    check_teacher_ratio(teacher_ratio)
    u = step * rounds / max(total_steps, 1)
    r = int(math.floor(u))
    return ("teacher" if u - r < teacher_ratio else "student"), r
