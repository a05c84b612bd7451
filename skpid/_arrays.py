"""Array conversions shared by every entry point (numpy only; torch is never imported
here, so that ``import skpid`` stays light)."""

from __future__ import annotations


def to_numpy(X):
    """Torch tensors (on any device, with or without grad, of any dtype) as numpy
    arrays; anything else unchanged.

    numpy has no bfloat16 (nor float8): floats narrower than 32 bits are widened to
    float32, which holds their values exactly.

    Examples
    --------
    >>> import torch
    >>> to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype
    dtype('float32')
    >>> to_numpy([1, 2])
    [1, 2]
    """
    if hasattr(X, "detach") and hasattr(X, "cpu"):
        tensor = X.detach().cpu()
        if tensor.is_floating_point() and tensor.element_size() < 4:
            tensor = tensor.float()
        return tensor.numpy()
    return X
