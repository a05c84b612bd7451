"""What the distiller does to data before a module sees it: input casting, labels of
datasets, row hashes, the single-row-batch rule."""

from __future__ import annotations

import hashlib
import math
import numbers
import zlib
from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Subset

from .._arrays import to_numpy
from .._labels import transform_labels


def cast_input(X, dtype: torch.dtype):
    """A real-valued ``X`` (numpy of any real dtype, pandas, torch tensors, a dict of
    them: skorch's several inputs) as ``dtype``, as scikit-learn estimators accept any
    real input; anything else unchanged."""
    if isinstance(X, Mapping):
        return {key: cast_input(value, dtype) for key, value in X.items()}
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # a pandas DataFrame
        X = _frame_values(X)
    if isinstance(X, torch.Tensor):
        convertible = X.is_floating_point() or (X.dtype != torch.bool and not X.is_complex())
        return X.to(dtype) if convertible and X.dtype != dtype else X
    if isinstance(X, np.ndarray) and X.dtype.kind in "fiu":
        if dtype == torch.bfloat16:  # no numpy dtype: a tensor
            return torch.as_tensor(X).to(dtype)
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        return X if X.dtype == np_dtype else X.astype(np_dtype)
    return X


def _frame_values(frame) -> np.ndarray:
    """The values of a DataFrame whose columns are all numbers or booleans, as one
    float64 array (``to_numpy`` of mixed dtypes gives objects)."""
    import pandas as pd
    bad = [str(name) for name, dtype in frame.dtypes.items()
           if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))]
    if bad:
        raise TypeError(f"X: columns {', '.join(bad)} are not numbers or booleans; encode "
                        "them (e.g. with a scikit-learn OneHotEncoder) before distilling.")
    return frame.to_numpy(dtype=np.float64)


def check_device(device) -> None:
    """A clear error for a device torch cannot use here (``"cuda"`` without CUDA)."""
    if device is None:
        return
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda'; got "
                         f"{device!r}.") from exc
    available = {"cuda": torch.cuda.is_available,
                 "mps": lambda: torch.backends.mps.is_available()}.get(kind)
    if available is not None and not available():
        raise ValueError(f"device={device!r}, but torch finds no {kind.upper()} device "
                         "here; use device='cpu'.")


class EncodedTargets(TorchDataset):
    """A dataset whose targets (labels of any kind) are given as indices into
    ``classes``, as the distiller's criteria take them."""

    def __init__(self, dataset, classes):
        self.dataset = dataset
        self.classes = np.asarray(classes)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        x, y = self.dataset[i]
        return x, int(transform_labels(np.atleast_1d(to_numpy(y)), self.classes, "y")[0])


def pool_features(rep: torch.Tensor, max_features: int | None) -> torch.Tensor:
    """A feature map (``(N, C, H, W)`` or ``(N, C, L)``) with more than ``max_features``
    values per row, average-pooled to the finest grid that has at most that many (one
    position per channel at least); anything else unchanged."""
    if max_features is None or rep.dim() not in (3, 4) or rep[0].numel() <= max_features:
        return rep
    per_channel = max(1, max_features // rep.shape[1])
    if rep.dim() == 3:
        return torch.nn.functional.adaptive_avg_pool1d(rep.float(), per_channel)
    side = max(1, math.isqrt(per_channel))
    return torch.nn.functional.adaptive_avg_pool2d(rep.float(), side)


def batches_per_epoch(n_rows: int, batch_size, drop_last=None, minimum: int = 2) -> int:
    """Training batches of an epoch over ``n_rows`` rows (``drop_last`` None: the
    distiller's short-tail rule)."""
    if not batch_size or batch_size < 0:
        return 1
    if drop_last is None:
        drop_last = short_tail(n_rows, batch_size, minimum)
    return max(n_rows // batch_size, 1) if drop_last else math.ceil(n_rows / batch_size)


def check_classes(classes, teacher_classes, teacher_logits, student_logits) -> None:
    """Teacher and student must speak of the classes of ``y``."""
    if teacher_classes is not None and (
            len(teacher_classes) != len(classes)
            or not np.array_equal(np.sort(teacher_classes), classes)):
        raise ValueError(f"teacher: it predicts classes {np.asarray(teacher_classes).tolist()}"
                         f" but y has classes {classes.tolist()}.")
    if teacher_logits.shape[1] != len(classes):
        raise ValueError(f"teacher: it outputs {teacher_logits.shape[1]} logits but y has "
                         f"{len(classes)} classes.")
    if student_logits.shape[1] != len(classes):
        raise ValueError(f"module: the student outputs {student_logits.shape[1]} logits but "
                         f"y has {len(classes)} classes.")


def short_tail(n_rows: int, batch_size, minimum: int = 2) -> bool:
    """Whether batches of ``batch_size`` over ``n_rows`` rows end in a batch of fewer
    than ``minimum`` rows (one row: BatchNorm cannot normalise it; batch-level criteria
    such as SinKD need more)."""
    return (isinstance(batch_size, numbers.Integral) and 1 < batch_size < n_rows
            and 0 < n_rows % batch_size < minimum)


def dataset_targets(dataset) -> np.ndarray:
    """The targets of a (skorch or torch) dataset, in row order: read off the dataset
    where it holds them (skorch's ``y``, a ``TensorDataset``'s last tensor, a
    ``targets`` attribute), else one pass over its rows."""
    from skorch.dataset import Dataset
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, EncodedTargets):
        return transform_labels(dataset_targets(dataset.dataset), dataset.classes, "y")
    if isinstance(dataset, Dataset) and dataset.y is not None:
        return np.asarray(to_numpy(dataset.y))
    if isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) == 2:
        return np.asarray(to_numpy(dataset.tensors[1]))
    if getattr(dataset, "targets", None) is not None and not isinstance(dataset, Dataset):
        return np.asarray(to_numpy(dataset.targets))
    return np.asarray([to_numpy(dataset[i][1]) for i in range(len(dataset))])


def head(X, n: int):
    """The first ``n`` rows of ``X`` (an array or a dataset)."""
    if isinstance(X, TorchDataset):
        return Subset(X, range(n))
    return X[:n]


def row_digests(X) -> list:
    """A 16-byte digest of each row of a batch (an array, a tensor, or a dict, list or
    tuple of them: all parts of a row)."""
    arrays = [np.ascontiguousarray(np.asarray(to_numpy(p))) for p in _parts(X)]
    arrays = [a.reshape(len(a), -1) for a in arrays]
    return [hashlib.blake2b(b"".join(a[i].tobytes() for a in arrays),
                            digest_size=16).digest() for i in range(len(arrays[0]))]


def _parts(X) -> list:
    if isinstance(X, Mapping):
        return [X[key] for key in sorted(X)]
    if isinstance(X, (list, tuple)):
        return list(X)
    return [X]


def row_hashes(X) -> torch.Tensor:
    """A number in [0, 1) per row from a hash of its input values: stable across epochs,
    batches and folds, so RID's held-out shares (ranges of it) hold the same rows. ``X``
    is a batch as the module receives it: an array or tensor, or a dict, list or tuple of
    them (all parts of a row are hashed)."""
    arrays = [np.asarray(to_numpy(p)) for p in _parts(X)]
    arrays = [np.ascontiguousarray(a.reshape(len(a), -1)) for a in arrays]
    hashes = []
    for i in range(len(arrays[0])):
        value = 0
        for a in arrays:
            value = zlib.crc32(a[i].tobytes(), value)
        hashes.append(value / 2 ** 32)
    return torch.tensor(hashes, dtype=torch.float64)
