"""Running teacher and student over data: the one pass the net's measurements (the
teacher check, the gate, the monitor), the first-batch probe and users
(:meth:`PIDDistiller.representations`) share: every row in order, in eval mode, on every
process (never sharded), drawing from no global generator."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
import torch
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .._arrays import to_numpy
from .._validation import check_choice
from ._data import dataset_targets, pool_features, row_digests
from ._hooks import capture, check_captured, resolve_layers
from ._losses import DistillationLoss, _eval


def check_pair_index(net, pair):
    """A layer-pair index, or None for the logits; a clear error otherwise."""
    if pair is None or (isinstance(pair, str) and pair == "logits"):
        return None
    n_pairs = len(net._layer_lists()[0])
    if (not isinstance(pair, numbers.Integral) or isinstance(pair, bool)
            or not 0 <= pair < n_pairs):
        raise ValueError(f"pair must be 'logits' or an index into teacher_layers / "
                         f"student_layers (0 to {n_pairs - 1}); got {pair!r}.")
    return int(pair)


def measurement_iterator(net, dataset):
    """Batches over ``dataset`` in order, on every process (not prepared by an
    accelerator), drawing from no global generator."""
    kwargs = net.get_params_for("iterator_valid")
    kwargs.setdefault("batch_size", net.batch_size)
    if kwargs["batch_size"] == -1:
        kwargs["batch_size"] = len(dataset)
    if is_dataloader(net.iterator_valid):
        kwargs.setdefault("generator", torch.Generator())
    return net.iterator_valid(dataset, **kwargs)

@torch.no_grad()
def run_batch(net, xb, pairs, teacher=True, student=True):
    """``(teacher logits, [teacher rep per pair], student logits, [student rep per
    pair])`` of one batch, the student in eval mode (its BatchNorm statistics do not
    move); ``pairs`` hold layer-pair indices or None (the logits)."""
    t_logits = t_reps = s_logits = s_reps = None
    if teacher:
        t_logits, t_feats = net.teacher_(xb)
        t_reps = [t_logits if p is None else t_feats[p] for p in pairs]
    if student:
        paths = net._layer_lists()[1]
        layers = resolve_layers(net._student(),
                                [None if p is None else paths[p] for p in pairs],
                                "student_layers")
        module = net._student()
        with _eval(module), capture(layers) as slots:
            x = to_tensor(xb, device=net._placement())
            s_logits = module(**x) if isinstance(x, Mapping) else module(x)
        check_captured(slots, [None if p is None else paths[p] for p in pairs],
                       "student_layers", "student")
        while isinstance(s_logits, (tuple, list)):
            s_logits = s_logits[0]
        s_reps = [s_logits if slot is None else slot for slot in slots]
    return t_logits, t_reps, s_logits, s_reps


def first_batch(net, X, y):
    """The first batch of ``X`` as the networks receive it."""
    return unpack_data(next(iter(measurement_iterator(net, net.get_dataset(X, y)))))[0]


def probe(net, X, y):
    """The networks' outputs on a first batch (the student's paired layers only for
    feature methods), for the shapes the distillation parts are built for."""
    xb = first_batch(net, X, y)
    n_pairs = len(net._layer_lists()[0])
    features = net._method().uses_features
    try:
        t_logits, t_feats, s_logits, s_feats = run_batch(
            net, xb, list(range(n_pairs)), student=features)
        if not features:
            s_logits = run_batch(net, xb, [None], teacher=False)[2]
            s_feats = [s_logits] * n_pairs
    except RuntimeError as exc:
        hint = _dtype_mismatch(xb, net._student(), net.teacher_)
        if hint is None:
            raise
        raise TypeError(f"{hint} ({exc})") from exc
    return t_logits, t_feats, s_logits, s_feats


def collect(net, X, pair=0, side="both", max_features=None):
    """:meth:`PIDDistiller.representations`: every row of ``X`` in order, through
    :func:`run_batch`, as numpy arrays (low-precision floats widened)."""
    pairs = [check_pair_index(net, p) for p in
             (pair if isinstance(pair, (list, tuple)) else [pair])]
    check_choice(side, "side", ("both", "teacher", "student"))
    teacher, student = side in ("both", "teacher"), side in ("both", "student")
    dataset = X if isinstance(X, TorchDataset) else net.get_dataset(X)
    out = [([], []) for _ in pairs]
    for batch in measurement_iterator(net, dataset):
        xb, _ = unpack_data(batch)
        _, t_reps, _, s_reps = run_batch(net, xb, pairs, teacher, student)
        for k, (t_out, s_out) in enumerate(out):
            if teacher:
                t_out.append(to_numpy(pool_features(t_reps[k], max_features)))
            if student:
                s_out.append(to_numpy(pool_features(s_reps[k], max_features)))
    result = [(np.concatenate(t) if teacher else None,
               np.concatenate(s) if student else None) for t, s in out]
    return result if isinstance(pair, (list, tuple)) else result[0]


class TrainingData:
    """What :meth:`DistillationLoss.prepare` receives: the training rows of a fit."""

    def __init__(self, net, dataset):
        self.n_rows = len(dataset)
        self.n_classes = len(net.classes_)
        self.y = torch.as_tensor(dataset_targets(dataset), dtype=torch.long,
                                 device=net._placement())
        self._net, self._dataset = net, dataset

    def teacher_features(self) -> list:
        """The teacher's representation of every training row at each layer pair (a
        pass of the teacher over the data)."""
        pairs = list(range(len(self._net._layer_lists()[0])))
        reps = collect(self._net, self._dataset, pairs, side="teacher")
        return [torch.as_tensor(t, dtype=torch.float32, device=self._net._placement())
                for t, _ in reps]


class RowIndex:
    """The index of each training row, looked up by a digest of the row's input: the
    memory bank of a criterion that needs it (``needs_row_index``, CRD) is indexed by
    row, and skorch's batches carry no row numbers."""

    def __init__(self, net, dataset):
        keys = []
        for batch in measurement_iterator(net, dataset):
            keys += row_digests(unpack_data(batch)[0])
        self.rows = {key: i for i, key in enumerate(keys)}

    def __call__(self, X) -> torch.Tensor:
        return torch.tensor([self.rows.get(key, -1) for key in row_digests(X)],
                            dtype=torch.long)


def prepare_criterion(net, method, X, y) -> None:
    """Give a criterion what it needs of the training rows (class means, a memory bank
    indexed by row) at the start of a fit, and ``net`` the row index every call."""
    needs_rows = getattr(method, "needs_row_index", False)
    prepares = type(method).prepare is not DistillationLoss.prepare
    if not (needs_rows or prepares):
        return
    dataset_train, _ = net.get_split_datasets(X, y)  # the rows the fit trains on
    if prepares and (not len(net.history) or not getattr(method, "is_prepared", True)):
        method.prepare(TrainingData(net, dataset_train))
    if needs_rows:
        net.row_index_ = RowIndex(net, dataset_train)


def unwrap(module):
    """The module a DistributedDataParallel or DataParallel wrapper holds."""
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(module, parallel):
        module = module.module
    return module


def as_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.is_floating_point() else tensor


def is_dataloader(iterator) -> bool:
    return isinstance(iterator, type) and issubclass(iterator, DataLoader)


def _dtype_mismatch(xb, student, teacher) -> str | None:
    """The message for a batch the networks failed on because of its dtype, if so."""
    if not isinstance(xb, torch.Tensor):
        return None
    dtypes = {p.dtype for module in (student, teacher.module) if module is not None
              for p in module.parameters() if p.is_floating_point()}
    if not dtypes or xb.dtype in dtypes:
        return None
    wanted = ", ".join(sorted(str(d).replace("torch.", "") for d in dtypes))
    got = str(xb.dtype).replace("torch.", "")
    return (f"X: the networks failed on a batch of dtype {got} "
            f"while their parameters are {wanted}; convert X first, e.g. "
            f"X.astype(np.{wanted.split(',')[0]})")
