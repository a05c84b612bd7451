"""CRD: Contrastive Representation Distillation (Tian, Krishnan & Isola, ICLR 2020).

The student's representation of a row should identify the teacher's representation of
the *same* row among those of other rows: a noise-contrastive estimation (NCE) bound on
the mutual information between the two representations. Each side has an embedding
head (linear map + L2 normalisation to ``feat_dim``) and a memory bank holding a moving
average of its embedding of every training row, from which the negatives are drawn.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_int, check_real
from ._dkd import upcast
from ._losses import DistillationLoss, check_temperature
from ._nd import adopt_buffers

CRD_NEGATIVES = ("other_class", "uniform")

# the state prepare() creates (restored by load_state_dict into a fresh criterion)
_STATE_BUFFERS = frozenset({"memory_student", "memory_teacher", "log_z", "row_order",
                            "class_start", "class_count", "sampler_state"})
_MASK64 = (1 << 64) - 1
# a validation batch draws from a stream of its own, apart from the training batches'
_VALIDATION_STREAM = 1 << 40


def check_feat_dim(value, name: str = "feat_dim") -> int:
    return check_int(value, name, minimum=1)


def check_n_negatives(value, name: str = "n_negatives") -> int:
    return check_int(value, name, minimum=1)


def check_momentum(value, name: str = "momentum") -> float:
    # 1 would never update the bank
    return check_real(value, name, low=0, high=1, high_open=True)


def check_negatives(value, name: str = "negatives") -> str:
    return check_choice(value, name, CRD_NEGATIVES)


def check_random_state(value, name: str = "random_state"):
    """None or an int >= 0 (the seed of the negatives)."""
    if value is None:
        return None
    return check_int(value, name, minimum=0, expected="None or an int >= 0")


def crd_nce_loss(anchor: torch.Tensor, contrast: torch.Tensor, *, n_data: int,
                 temperature: float = 0.07, log_z: float = 0.0) -> torch.Tensor:
    """CRD's NCE loss for one anchor side (Tian et al. 2020, the critic ``h`` and its
    NCE objective), batch mean.

    Row i's anchor embedding ``a_i`` is scored against ``K + 1`` embeddings of the other
    side, ``contrast[i, 0]`` the positive (the same training row) and ``contrast[i, 1:]``
    K negatives, by

    .. math::

        h(a, c) = \\frac{e^{a^\\top c / \\tau} / Z}{e^{a^\\top c / \\tau} / Z + K / M},
        \\qquad L = -\\frac{1}{B} \\sum_i \\Big[\\log h(a_i, c_{i,0})
                    + \\sum_{k=1}^{K} \\log\\big(1 - h(a_i, c_{i,k})\\big)\\Big]

    with M = ``n_data`` (the number of training rows: negatives as a uniform noise
    distribution of density 1/M, K of them per positive) and τ the temperature. The
    paper's equation has ``Z = 1`` (``log_z=0``); its reference implementation divides
    by a constant Z estimated once, on the first batch, as ``M`` times the mean of
    ``exp(a·c/τ)`` (see :class:`CRDLoss`). Computed as ``log h = logsigmoid(u)``,
    ``log(1 − h) = logsigmoid(−u)`` with ``u = a·c/τ − log Z − log(K/M)``: exact and
    finite for any score (the reference adds 1e-7 inside its logarithms instead).

    Parameters
    ----------
    anchor : torch.Tensor of shape (B, d)
        Anchor embeddings (L2-normalised by the heads).
    contrast : torch.Tensor of shape (B, K + 1, d)
        For each anchor, its positive then its K negatives from the other side.
    n_data : int
        M, the number of training rows.
    temperature : float > 0
    log_z : float
        ``log Z``.

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([[1.0, 0.0]])
    >>> good = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])   # positive aligned
    >>> bad = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])    # a negative aligned
    >>> bool(crd_nce_loss(a, good, n_data=10) < crd_nce_loss(a, bad, n_data=10))
    True
    """
    check_temperature(temperature)
    check_int(n_data, "n_data", minimum=1)
    if anchor.dim() != 2 or contrast.dim() != 3 or contrast.shape[0] != anchor.shape[0] \
            or contrast.shape[2] != anchor.shape[1] or contrast.shape[1] < 2:
        raise ValueError(
            "CRD: anchor must be (B, d) and contrast (B, K + 1, d) with K >= 1 negatives "
            f"after the positive; got {tuple(anchor.shape)} and {tuple(contrast.shape)}.")
    n_neg = contrast.shape[1] - 1
    anchor, contrast = upcast(anchor, contrast)
    scores = torch.einsum("bd,bkd->bk", anchor, contrast) / temperature
    u = scores - float(log_z) - math.log(n_neg / n_data)
    return -(F.logsigmoid(u[:, 0]) + F.logsigmoid(-u[:, 1:]).sum(dim=1)).mean()


def crd_loss(student_embed: torch.Tensor, teacher_embed: torch.Tensor,
             student_contrast: torch.Tensor, teacher_contrast: torch.Tensor, *,
             n_data: int, temperature: float = 0.07, log_z=(0.0, 0.0)) -> torch.Tensor:
    """CRD's symmetric objective (Tian et al. 2020).

    Both sides, as in their reference implementation: the student's embedding as anchor
    against teacher embeddings (positive and negatives), plus the teacher's as anchor
    against student embeddings,

    ``crd_nce_loss(s, C^t) + crd_nce_loss(t, C^s)`` (:func:`crd_nce_loss`),

    with ``C^t[i] = [t_{row i}, t_{neg 1}, …, t_{neg K}]`` drawn from the teacher's
    memory bank (and ``C^s`` from the student's) by :class:`CRDLoss`.

    Parameters
    ----------
    student_embed, teacher_embed : torch.Tensor of shape (B, d)
    student_contrast, teacher_contrast : torch.Tensor of shape (B, K + 1, d)
        Positive first, then the negatives, of each side.
    n_data : int
        M, the number of training rows.
    temperature : float > 0
    log_z : pair of float
        ``log Z`` of the student-anchor and of the teacher-anchor side.

    Examples
    --------
    >>> import torch
    >>> e = torch.eye(3)
    >>> right = torch.stack([e[[0, 1, 2]], e[[1, 2, 0]], e[[2, 0, 1]]])  # positive first
    >>> wrong = torch.stack([e[[1, 0, 2]], e[[2, 1, 0]], e[[0, 2, 1]]])  # a negative matches
    >>> bool(crd_loss(e, e, right, right, n_data=3) < crd_loss(e, e, wrong, wrong, n_data=3))
    True
    """
    return (crd_nce_loss(student_embed, teacher_contrast, n_data=n_data,
                         temperature=temperature, log_z=log_z[0])
            + crd_nce_loss(teacher_embed, student_contrast, n_data=n_data,
                           temperature=temperature, log_z=log_z[1]))


def _log_normalizer(scores: torch.Tensor, n_data: int) -> torch.Tensor:
    """``log Z`` with ``Z = M · mean(exp(scores))`` (scores already divided by τ),
    from logsumexp."""
    return math.log(n_data) + torch.logsumexp(scores.flatten(), 0) - math.log(scores.numel())


def _mix_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for stream ``stream`` of seed ``seed`` (splitmix64 finaliser)."""
    x = (seed + (stream + 1) * 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) & ((1 << 63) - 1)


class CRDLoss(DistillationLoss):
    """``method="crd"``: Contrastive Representation Distillation (Tian et al., ICLR 2020).

    For each layer pair k, embedding heads ``g^s_k``, ``g^t_k`` (linear map of the
    flattened representation to ``feat_dim``, then L2 normalisation) and two memory
    banks (one per side) of ``n_rows × feat_dim``, indexed by training-row index.
    On a training batch with row indices ``index``:

    1. ``n_negatives`` negative rows are drawn per anchor (``negatives``:
       ``"other_class"``, uniformly among the training rows of the other classes, as
       the authors' CIFAR-100 code does; ``"uniform"``, among all rows, as their
       ImageNet code does);
    2. the student's embedding is scored against the teacher bank's rows
       ``[index_i, negatives_i]`` (the positive is the teacher bank's entry of the same
       row) and the teacher's against the student bank's (:func:`crd_loss`);
    3. the banks' rows ``index`` are updated with momentum and renormalised,
       ``m_r ← normalise(momentum · m_r + (1 − momentum) · g(x_r))``.

    ``distill = Σ_k w_k (NCE_student,k + NCE_teacher,k)`` (``w_k``: ``pid_gate``'s gate
    of pair k, 1 without it); history also records ``nce_student`` and
    ``nce_teacher`` (summed over pairs, ungated). The normalisation constant Z of each
    side is estimated once, on the first training batch, as the reference
    implementation does (``log Z`` kept in the buffer ``log_z``). In validation
    (``index`` is None) the positive is the other side's current embedding of the
    row, negatives come from the banks, and nothing is updated.

    State (buffers, so saved with the criterion and kept by ``partial_fit``):
    ``memory_student`` and ``memory_teacher`` (n_pairs, n_rows, feat_dim), ``log_z``,
    the class index of the rows for the sampler, and ``sampler_state`` = (seed,
    batches drawn). :meth:`prepare` (called by the net at the start of ``fit`` with the
    number of training rows and their labels) allocates them; :meth:`forward` raises a
    ``RuntimeError`` before. The banks start uniform in ``±1/√(feat_dim/3)`` (the
    reference's initialisation).

    Reproducibility: the negatives of a training batch (and the banks' initial values)
    come from a ``torch.Generator`` on the banks' device, seeded with a hash of
    (seed, number of training batches drawn so far): a seeded fit draws the same
    negatives whatever else consumes random numbers, and a saved criterion resumes the
    same sequence. The seed is ``random_state`` or, when that is None, drawn from
    torch's global generator in :meth:`prepare` (so a fit seeded through the net's
    ``random_state`` is reproducible). Validation batches use a separate stream and do
    not advance the count.

    Parameters
    ----------
    feat_dim : int, default=128
        Width of the embeddings (the paper's 128).
    n_negatives : int, default=256
        K, negatives per anchor, sized for small CPU data sets (drawn with replacement,
        so it may exceed the number of rows); the paper uses 16384 on CIFAR-100 and
        ImageNet. Memory per batch: ``2 · n_pairs · batch · (K + 1) · feat_dim`` floats.
    temperature : float, default=0.07
        τ of the critic (the reference's value); > 0.
    momentum : float, default=0.5
        Momentum of the bank updates, in [0, 1).
    negatives : {"other_class", "uniform"}, default="other_class"
        Where negatives come from (above).
    random_state : int or None, default=None
        Seed of the negatives and of the banks' initial values.

    Examples
    --------
    >>> import torch
    >>> from types import SimpleNamespace
    >>> crit = CRDLoss(feat_dim=8, n_negatives=5, random_state=0)
    >>> crit.build([(4, 6)], [(4, 3)], n_classes=2)
    >>> crit.prepare(SimpleNamespace(n_rows=10, n_classes=2, y=torch.arange(10) % 2,
    ...                              teacher_features=None))
    >>> crit.memory_student.shape
    torch.Size([1, 10, 8])
    >>> idx = torch.tensor([0, 3, 4, 7])
    >>> terms = crit(None, None, [torch.randn(4, 3)], [torch.randn(4, 6)], idx % 2,
    ...              index=idx)
    >>> sorted(terms)
    ['distill', 'nce_student', 'nce_teacher']
    """

    uses_features = True
    weights_pairs = True
    #: The net supplies ``index``, the batch's training-row indices.
    needs_row_index = True
    # the paper's weight of the CRD term next to the cross-entropy (β = 0.8). On the
    # quality benchmark's tabular task (3 seeds) it gained +5.8 points over the student
    # alone and 2 +7.1; a point on 3 seeds, where the benchmark's paired 95 %
    # intervals span ±1 to ±3 points, does not justify leaving the paper's weight
    recommended_weight = 0.8
    student_terms = ("distill", "nce_student", "nce_teacher")
    param_checks = {"feat_dim": check_feat_dim, "n_negatives": check_n_negatives,
                    "temperature": check_temperature, "momentum": check_momentum,
                    "negatives": check_negatives, "random_state": check_random_state}

    def __init__(self, feat_dim: int = 128, n_negatives: int = 256,
                 temperature: float = 0.07, momentum: float = 0.5,
                 negatives: str = "other_class", random_state=None):
        super().__init__()
        CRDLoss.check_params(dict(feat_dim=feat_dim, n_negatives=n_negatives,
                                  temperature=temperature, momentum=momentum,
                                  negatives=negatives, random_state=random_state))
        self.feat_dim = feat_dim
        self.n_negatives = n_negatives
        self.temperature = temperature
        self.momentum = momentum
        self.negatives = negatives
        self.random_state = random_state

    # ------------------------------------------------------------------ parts and state
    def build(self, teacher_shapes, student_shapes, n_classes, names=()):
        """The embedding heads (one per side and layer pair); the banks too if
        :meth:`prepare` already ran."""
        super().build(teacher_shapes, student_shapes, n_classes)
        self.embed_student = nn.ModuleList(
            nn.Linear(math.prod(s[1:]), self.feat_dim) for s in student_shapes)
        self.embed_teacher = nn.ModuleList(
            nn.Linear(math.prod(t[1:]), self.feat_dim) for t in teacher_shapes)
        if self.is_prepared:
            self._allocate_banks(len(teacher_shapes))

    @property
    def is_prepared(self) -> bool:
        """Whether :meth:`prepare` has run (the sampler's state exists)."""
        return "sampler_state" in self._buffers

    @torch.no_grad()
    def prepare(self, data) -> None:
        """Allocate the memory banks for ``data.n_rows`` training rows and index the
        rows by class (``data.y``) for the negatives; choose the seed. A criterion
        prepared before for as many rows (a warm start) keeps its banks, ``log Z``
        and seed."""
        n_rows = check_int(int(data.n_rows), "n_rows", minimum=1)
        y = data.y.long()
        if y.shape != (n_rows,):
            raise ValueError(f"CRD: data.y must hold one label per training row, shape "
                             f"({n_rows},); got {tuple(y.shape)}.")
        device = y.device
        n_classes = max(int(data.n_classes), int(y.max()) + 1)
        counts = torch.bincount(y, minlength=n_classes)
        same_rows = self.is_prepared and int(self.row_order.numel()) == n_rows
        self.register_buffer("row_order", torch.argsort(y, stable=True))
        self.register_buffer("class_start", torch.cumsum(counts, 0) - counts)
        self.register_buffer("class_count", counts)
        if not same_rows:
            seed = (self.random_state if self.random_state is not None
                    else int(torch.randint(0, 2 ** 62, (1,)).item()))
            self.register_buffer("sampler_state",
                                 torch.tensor([seed, 0], dtype=torch.long, device=device))
            for name in ("memory_student", "memory_teacher", "log_z"):
                if name in self._buffers:  # banks of other rows: allocated anew
                    delattr(self, name)
        if hasattr(self, "embed_student"):
            self._allocate_banks(len(self.embed_student))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        adopt_buffers(self, state_dict, prefix, _STATE_BUFFERS.__contains__)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _allocate_banks(self, n_pairs: int) -> None:
        n_rows, device = self.row_order.numel(), self.row_order.device
        shape = (n_pairs, n_rows, self.feat_dim)
        if ("memory_student" in self._buffers and self.memory_student.shape == shape
                and self.memory_teacher.shape == shape):
            return
        gen = self._generator(-1)  # stream -1: the banks' initial values
        bound = 1.0 / math.sqrt(self.feat_dim / 3.0)
        banks = (torch.rand((2,) + shape, generator=gen, device=device) * 2 - 1) * bound
        self.register_buffer("memory_student", banks[0].clone())
        self.register_buffer("memory_teacher", banks[1].clone())
        self.register_buffer("log_z", torch.full((n_pairs, 2), float("nan"), device=device))

    def _generator(self, stream: int) -> torch.Generator:
        seed = int(self.sampler_state[0])
        device = self.sampler_state.device
        gen = torch.Generator(device=device)
        gen.manual_seed(_mix_seed(seed, stream))
        return gen

    def draw_negatives(self, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``n_negatives`` training-row indices per row of the batch (labels ``y``),
        shape (batch, n_negatives), drawn with replacement from ``generator``:
        uniformly among the rows of the other classes (``"other_class"``; among all
        rows where every row has the anchor's class) or among all rows
        (``"uniform"``)."""
        device = self.row_order.device
        n_rows, n_batch = self.row_order.numel(), y.shape[0]
        u = torch.rand((n_batch, self.n_negatives), generator=generator, device=device)
        if self.negatives == "uniform":
            return (u * n_rows).long().clamp_max(n_rows - 1)
        y = y.long().to(device)
        start = self.class_start[y][:, None]
        count = self.class_count[y][:, None]
        others = n_rows - count
        alone = others == 0  # no row of another class: fall back to all rows
        high = torch.where(alone, torch.full_like(others, n_rows), others)
        pos = (u * high).long().clamp_max(high - 1)
        pos = torch.where(alone | (pos < start), pos, pos + count)  # skip y's block
        return self.row_order[pos]

    def _embed(self, heads, feats):
        return [F.normalize(h(f.flatten(1).float()), dim=1) for h, f in zip(heads, feats)]

    # ------------------------------------------------------------------ the loss
    def forward(self, student_logits, teacher_logits, student_feats, teacher_feats, y,
                phase="student", index=None, training=None, pair_weights=None, **kwargs):
        if not self.is_prepared or "memory_student" not in self._buffers:
            raise RuntimeError(
                "CRDLoss needs its memory banks: call build(...) and prepare(data) "
                "(PIDDistiller does at the start of fit) before computing the loss.")
        n_rows = self.row_order.numel()
        learning = index is not None and training is not False
        s_emb = self._embed(self.embed_student, student_feats)
        t_emb = self._embed(self.embed_teacher, [t.detach() for t in teacher_feats])
        if index is not None:
            index = index.long().to(self.row_order.device)
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_rows):
                raise ValueError(
                    f"CRD: index must hold training-row indices in 0 … {n_rows - 1} (the "
                    f"rows prepare() was given); got values in {int(index.min())} … "
                    f"{int(index.max())}.")
        stream = (int(self.sampler_state[1]) if learning
                  else _VALIDATION_STREAM + int(self.sampler_state[1]))
        negatives = self.draw_negatives(y, self._generator(stream))
        if learning:
            self.sampler_state[1] += 1
        nce_s, nce_t = [], []
        for k, (s, t) in enumerate(zip(s_emb, t_emb)):
            bank_s, bank_t = self.memory_student[k], self.memory_teacher[k]
            if index is not None:  # positives from the banks (the reference)
                rows = torch.cat([index[:, None], negatives], dim=1)
                contrast_t, contrast_s = bank_t[rows], bank_s[rows]
            else:  # validation: the other side's current embedding is the positive
                contrast_t = torch.cat([t.detach()[:, None], bank_t[negatives]], dim=1)
                contrast_s = torch.cat([s.detach()[:, None], bank_s[negatives]], dim=1)
            log_z = self._log_z(k, s, t, contrast_s, contrast_t, store=learning)
            nce_s.append(crd_nce_loss(s, contrast_t, n_data=n_rows,
                                      temperature=self.temperature, log_z=log_z[0]))
            nce_t.append(crd_nce_loss(t, contrast_s, n_data=n_rows,
                                      temperature=self.temperature, log_z=log_z[1]))
            if learning:
                self._update_bank(bank_s, index, s)
                self._update_bank(bank_t, index, t)
        per_pair = torch.stack([a + b for a, b in zip(nce_s, nce_t)])
        distill = (per_pair.sum() if pair_weights is None
                   else (per_pair * pair_weights.to(per_pair)).sum())
        return {"distill": distill, "nce_student": torch.stack(nce_s).sum(),
                "nce_teacher": torch.stack(nce_t).sum()}

    @torch.no_grad()
    def _log_z(self, k, s, t, contrast_s, contrast_t, store: bool):
        """``(log Z_student-anchor, log Z_teacher-anchor)`` of pair k, estimated on the
        first training batch and kept (estimated but not kept before that)."""
        stored = self.log_z[k]
        if not torch.isnan(stored).any():
            return float(stored[0]), float(stored[1])
        n_rows = self.row_order.numel()
        scores_s = torch.einsum("bd,bkd->bk", s, contrast_t) / self.temperature
        scores_t = torch.einsum("bd,bkd->bk", t, contrast_s) / self.temperature
        estimate = torch.stack([_log_normalizer(scores_s, n_rows),
                                _log_normalizer(scores_t, n_rows)])
        if store:
            self.log_z[k] = estimate
        return float(estimate[0]), float(estimate[1])

    @torch.no_grad()
    def _update_bank(self, bank, index, embed) -> None:
        mixed = self.momentum * bank[index] + (1 - self.momentum) * embed.detach().to(bank)
        bank[index] = F.normalize(mixed, dim=1)
