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

from ._checks import check_choice, check_flag, check_int, check_real

# Learned variances: sigma^2 = softplus(a) + _VAR_FLOOR, a initialised to _VAR_INIT
# (so sigma^2 starts near 5): the distance term starts small and grows as the variance
# is learned down; the floor keeps 1/sigma^2 bounded.
_VAR_FLOOR = 1e-3
_VAR_INIT = 5.0

VARIANCE_PENALTIES = ("log", "square")


# ----------------------------------------------------------------------------------------
# checks of the settings (one per setting; the net uses the same ones)
def check_temperature(value, name: str = "temperature") -> float:
    """KD temperature: finite and > 0 (0 divides by zero, inf flattens every softmax)."""
    return check_real(value, name, low=0, low_open=True, expected="> 0 and finite")


def check_rounds(value, name: str = "rounds") -> int:
    return check_int(value, name, low=1)


def check_teacher_ratio(value, name: str = "teacher_ratio") -> float:
    # 0 would never train the filters, 1 never the student
    return check_real(value, name, low=0, high=1, low_open=True, high_open=True,
                      expected="in the open interval (0, 1)")


def check_variance_penalty(value, name: str = "variance_penalty") -> str:
    return check_choice(value, name, VARIANCE_PENALTIES)


def check_filter_holdout(value, name: str = "filter_holdout") -> float:
    return check_real(value, name, low=0, high=1)


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
    negative log-likelihood) or ``mean(σ⁴)`` (``"square"``, the research code's choice).

    Examples
    --------
    >>> import torch
    >>> float(variance_penalty(torch.ones(3))), float(variance_penalty(torch.full((2,), 2.0), "square"))
    (0.0, 4.0)
    """
    if check_variance_penalty(kind, "kind") == "log":
        return torch.mean(torch.log(variance))
    return torch.mean(variance ** 2)


def _per_channel(variance, like):
    # channels are axis 1: (N, C) vectors or (N, C, H, W) maps
    return variance.view(1, -1, *([1] * (like.dim() - 2)))


def _per_sample(teacher_shapes, student_shapes, n_classes):
    return (tuple(tuple(s)[1:] for s in teacher_shapes),
            tuple(tuple(s)[1:] for s in student_shapes), n_classes)


def _variance(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + _VAR_FLOOR


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


def make_head(in_shape, n_classes: int, pool: bool = True) -> nn.Module:
    """A classifier head on a (filtered) representation: ReLU–Linear, after a global
    average pool (``pool=True``) or a flatten of the full map (the research code)."""
    if len(in_shape) == 2:
        return nn.Sequential(nn.ReLU(), nn.Linear(in_shape[1], n_classes))
    if pool:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.ReLU(),
                             nn.Linear(in_shape[1], n_classes))
    return nn.Sequential(nn.Flatten(), nn.ReLU(),
                         nn.Linear(int(math.prod(in_shape[1:])), n_classes))


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
        ValueError: method__rounds must be an integer >= 1; got 0.
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

    def build(self, teacher_shapes, student_shapes, n_classes, names=()):
        """One regressor (student features → teacher channels) per layer pair."""
        super().build(teacher_shapes, student_shapes, n_classes)
        self.regressors = nn.ModuleList(
            make_filter(s, t[1]) for t, s in zip(teacher_shapes, student_shapes))


class FitNetLoss(_RegressorLoss):
    """``method="fitnet"``: MSE between regressed student features and the teacher's
    (summed over layer pairs)."""

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", **kwargs):
        terms = [fitnet_loss(r(s), t.detach())
                 for r, s, t in zip(self.regressors, student_feats, teacher_feats)]
        return {"distill": torch.stack(terms).sum()}


class VIDLoss(_RegressorLoss):
    """``method="vid"``: variational information distillation, a Gaussian with learned
    per-channel variance (summed over layer pairs)."""

    def build(self, teacher_shapes, student_shapes, n_classes, names=()):
        """The regressors, and one learned per-channel variance per layer pair."""
        super().build(teacher_shapes, student_shapes, n_classes)
        self.raw_variances = nn.ParameterList(
            nn.Parameter(torch.full((t[1],), _VAR_INIT)) for t in teacher_shapes)

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", **kwargs):
        terms = [vid_loss(r(s), t.detach(), _variance(a)) for r, a, s, t in
                 zip(self.regressors, self.raw_variances, student_feats, teacher_feats)]
        return {"distill": torch.stack(terms).sum()}


class RIDLoss(DistillationLoss):
    """``method="rid"``: Redundant Information Distillation (Dissanayake et al. 2025).

    Per layer pair k: a teacher filter ``f_t,k`` with a classifier head ``g_k``, a student
    filter ``f_s,k`` and per-channel variances ``σ²_k = softplus(a_k) + 1e-3``
    (``a_k`` starts at 5). Two phases alternate (the schedule is run by
    :class:`~skpid.PIDDistiller`):

    - teacher phase: ``Σ_k CE(g_k(f_t,k(T_k)), y) + [after the first round] Σ_k D_k``,
      updating teacher filters and heads only;
    - student phase: the distiller adds ``pid_weight · Σ_k (penalty(σ²_k) + D_k)`` to the
      student's cross-entropy, updating student, student filters and variances only;

    with ``D_k = mean((f_s,k(S_k) − f_t,k(T_k))² / σ²_k)``.

    Parameters
    ----------
    rounds : int, default=4
        R, the number of teacher/student alternations over ``max_epochs``.
    teacher_ratio : float, default=0.25
        ρ, the share of each round spent in the teacher phase.
    variance_penalty : {"log", "square"}, default="log"
        ``"log"``: mean log σ² (the Gaussian negative log-likelihood; principled).
        ``"square"``: mean σ⁴, as in the authors' research code.
    pool_heads : bool, default=True
        Heads on feature maps average-pool first (small heads); ``False`` flattens the
        full map as the research code does (large linear layers for big maps).
    filter_holdout : float, default=0.0
        Fraction of training samples (chosen by a hash of the input row, so stable across
        epochs and folds) on which alone the heads' cross-entropy is computed. With small
        training sets the head can memorise labels through nuisance features and drag the
        student towards that memorisation; a held-out part guards against it. 0 uses all.
    """

    two_phase = True
    # The paper uses alpha_1 = 10; with this implementation that pulls a SmallCNN(4)
    # student on digits far below no distillation (test accuracy 0.64 against 0.95 at
    # lr 1e-2, 20 epochs), while 1 stays level with it: 1 until RID is reworked.
    student_terms = ("distill", "distance")
    teacher_terms = ("filter_ce", "distance")
    param_checks = {"rounds": check_rounds, "teacher_ratio": check_teacher_ratio,
                    "variance_penalty": check_variance_penalty, "pool_heads": check_flag,
                    "filter_holdout": check_filter_holdout}

    def __init__(self, rounds: int = 4, teacher_ratio: float = 0.25,
                 variance_penalty: str = "log", pool_heads: bool = True,
                 filter_holdout: float = 0.0):
        super().__init__()
        RIDLoss.check_params(dict(rounds=rounds, teacher_ratio=teacher_ratio,
                                  variance_penalty=variance_penalty,
                                  pool_heads=pool_heads, filter_holdout=filter_holdout))
        self.rounds = rounds
        self.teacher_ratio = teacher_ratio
        self.variance_penalty = variance_penalty
        self.pool_heads = pool_heads
        self.filter_holdout = filter_holdout

    def build(self, teacher_shapes, student_shapes, n_classes, names=()):
        """Teacher filters with their heads, student filters and per-channel variances,
        one of each per layer pair."""
        super().build(teacher_shapes, student_shapes, n_classes)
        self.teacher_filters = nn.ModuleList(make_filter(t, t[1]) for t in teacher_shapes)
        self.heads = nn.ModuleList(make_head(t, n_classes, self.pool_heads)
                                   for t in teacher_shapes)
        self.student_filters = nn.ModuleList(
            make_filter(s, t[1]) for t, s in zip(teacher_shapes, student_shapes))
        self.raw_variances = nn.ParameterList(
            nn.Parameter(torch.full((t[1],), _VAR_INIT)) for t in teacher_shapes)

    def teacher_side_parameters(self):
        if not hasattr(self, "heads"):  # not built yet
            return []
        return list(self.teacher_filters.parameters()) + list(self.heads.parameters())

    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", with_distance=True, holdout=None, **kwargs):
        if phase == "teacher":
            return self._teacher_terms(student_feats, teacher_feats, y, with_distance, holdout)
        distances, penalties = [], []
        # Teacher filters are fixed in the student phase: eval mode keeps their BatchNorm
        # statistics from drifting with student batches.
        with _eval(self.teacher_filters), torch.no_grad():
            targets = [f(t) for f, t in zip(self.teacher_filters, teacher_feats)]
        for f_s, a, s, target in zip(self.student_filters, self.raw_variances,
                                     student_feats, targets):
            var = _variance(a)
            distances.append(rid_distance(f_s(s), target, var))
            penalties.append(variance_penalty(var, self.variance_penalty))
        distance = torch.stack(distances).sum()
        return {"distill": distance + torch.stack(penalties).sum(), "distance": distance}

    def _teacher_terms(self, student_feats, teacher_feats, y, with_distance, holdout):
        ces, distances = [], []
        with _eval(self.student_filters), torch.no_grad():
            student_targets = [f(s.detach()) for f, s in zip(self.student_filters, student_feats)]
        for f_t, g, a, t, s in zip(self.teacher_filters, self.heads, self.raw_variances,
                                   teacher_feats, student_targets):
            filtered = f_t(t)
            if holdout is None:
                ces.append(F.cross_entropy(g(filtered), y))
            elif holdout.any():
                ces.append(F.cross_entropy(g(filtered[holdout]), y[holdout]))
            else:  # no held-out sample in this batch: the head learns nothing from it
                ces.append(filtered.sum() * 0.0)
            if with_distance:
                distances.append(rid_distance(s, filtered, _variance(a).detach()))
        terms = {"filter_ce": torch.stack(ces).sum()}
        terms["distance"] = (torch.stack(distances).sum() if distances
                             else terms["filter_ce"].new_zeros(()))
        return terms


class TEDLoss(RIDLoss):
    """``method="ted"``: RID with a single round (teacher filters trained first, then
    fixed while the student learns). Same parameters as :class:`RIDLoss` except
    ``rounds``, which is always 1."""

    def __init__(self, teacher_ratio: float = 0.25, variance_penalty: str = "log",
                 pool_heads: bool = True, filter_holdout: float = 0.0):
        super().__init__(rounds=1, teacher_ratio=teacher_ratio,
                         variance_penalty=variance_penalty, pool_heads=pool_heads,
                         filter_holdout=filter_holdout)


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


METHODS = {"none": NoDistillation, "kd": KDLoss, "fitnet": FitNetLoss, "vid": VIDLoss,
           "rid": RIDLoss, "ted": TEDLoss}
"""Names accepted by ``PIDDistiller(method=...)``."""


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
