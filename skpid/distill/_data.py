"""What the distiller does to data before a module sees it: input casting, labels of
datasets, row hashes, the single-row-batch rule."""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Subset

from .._arrays import to_numpy


def cast_input(X, dtype: torch.dtype):
    """A real-valued ``X`` (numpy of any real dtype, pandas, torch tensors) as
    ``dtype``, as scikit-learn estimators accept any real input; anything else
    unchanged."""
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # a pandas DataFrame
        X = X.to_numpy()
    if isinstance(X, torch.Tensor):
        convertible = X.is_floating_point() or (X.dtype != torch.bool and not X.is_complex())
        return X.to(dtype) if convertible and X.dtype != dtype else X
    if isinstance(X, np.ndarray) and X.dtype.kind in "fiu":
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        return X if X.dtype == np_dtype else X.astype(np_dtype)
    return X


def single_row_tail(n_rows: int, batch_size) -> bool:
    """Whether batches of ``batch_size`` over ``n_rows`` rows end in a batch of one."""
    return (isinstance(batch_size, numbers.Integral) and 1 < batch_size < n_rows
            and n_rows % batch_size == 1)


def dataset_targets(dataset) -> np.ndarray:
    """The targets of a (skorch or torch) dataset, in row order."""
    from skorch.dataset import Dataset
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, Dataset) and dataset.y is not None:
        return np.asarray(to_numpy(dataset.y))
    return np.asarray([to_numpy(dataset[i][1]) for i in range(len(dataset))])


def head(X, n: int):
    """The first ``n`` rows of ``X`` (an array or a dataset)."""
    if isinstance(X, TorchDataset):
        return Subset(X, range(n))
    return X[:n]


def row_hashes(X) -> torch.Tensor:
    """A number in [0, 1) per row from a hash of its input values: stable across epochs,
    batches and folds, so RID's held-out shares (ranges of it) hold the same rows. ``X``
    is a batch as the module receives it: an array or tensor, or a dict, list or tuple of
    them (all parts of a row are hashed)."""
    if isinstance(X, Mapping):
        parts = [X[key] for key in sorted(X)]
    elif isinstance(X, (list, tuple)):
        parts = list(X)
    else:
        parts = [X]
    arrays = [np.asarray(to_numpy(p)) for p in parts]
    arrays = [np.ascontiguousarray(a.reshape(len(a), -1)) for a in arrays]
    hashes = []
    for i in range(len(arrays[0])):
        value = 0
        for a in arrays:
            value = zlib.crc32(a[i].tobytes(), value)
        hashes.append(value / 2 ** 32)
    return torch.tensor(hashes, dtype=torch.float64)
