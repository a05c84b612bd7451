"""Capture intermediate activations of a torch module by module path.

Hooks are registered only for the duration of one forward pass (a context manager) and
removed afterwards: a module never keeps a hook between calls, so nets and modules pickle,
deepcopy and ``clone`` exactly as they would without distillation. A hook records only
the forward passes of the thread that registered it: clones of a net share their teacher,
and two fits in two threads run it at the same time.
"""

from __future__ import annotations

import difflib
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

from torch import nn


def resolve_layers(module: nn.Module, paths: Sequence[str | None], argname: str) -> list:
    """Look up each module path (``None`` stands for the module's output).

    Raises
    ------
    ValueError
        If a path names no submodule; the message lists the available names and
        suggests the closest one.
    """
    named = dict(module.named_modules())
    found = []
    for path in paths:
        if path is None:
            found.append(None)
            continue
        if not isinstance(path, str):
            raise TypeError(f"{argname} must hold module paths (str) or None; got {path!r}.")
        if path not in named:
            names = [name for name in named if name]
            close = difflib.get_close_matches(path, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{argname}: no layer {path!r} in {type(module).__name__}.{hint} "
                f"Available layers: {', '.join(names) or '(none)'}.")
        found.append(named[path])
    return found


def _first_tensor(output):
    # Some layers (LSTM, attention) return tuples; their first element is the
    # representation.
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


@contextmanager
def capture(layers: Sequence[nn.Module | None]) -> Iterator[list]:
    """Record the outputs of ``layers`` during the forward passes run inside the block.

    Parameters
    ----------
    layers : sequence of nn.Module or None
        Modules whose outputs to record; ``None`` entries are left as ``None`` in the
        result (the caller fills them with the network output).

    Yields
    ------
    list
        One slot per layer, filled with the layer's output on the last forward call.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with capture([net[1], None]) as out:
    ...     _ = net(torch.zeros(5, 3))
    >>> out[0].shape, out[1]
    (torch.Size([5, 4]), None)
    """
    slots: list = [None] * len(layers)
    handles = []
    thread = threading.get_ident()
    try:
        for i, layer in enumerate(layers):
            if layer is not None:
                handles.append(layer.register_forward_hook(_Recorder(slots, i, thread)))
        yield slots
    finally:
        for handle in handles:
            handle.remove()


def check_captured(slots: list, paths: Sequence[str | None], argname: str,
                   owner: str) -> None:
    """A clear error for a named layer that did not run in the forward pass: its slot is
    empty, and silently pairing the network's output in its place would distill (and
    report) the wrong representation."""
    for i, (slot, path) in enumerate(zip(slots, paths)):
        if path is not None and slot is None:
            raise ValueError(
                f"{argname}[{i}] = {path!r}: the layer exists in the {owner} but did not "
                f"run in its forward pass, so it has no representation to pair; choose a "
                "layer that forward uses.")


class _Recorder:
    """Forward hook writing a layer's output into one slot of a shared list, for the
    forward passes of one thread only."""

    def __init__(self, slots: list, index: int, thread: int):
        self.slots = slots
        self.index = index
        self.thread = thread

    def __call__(self, module, inputs, output):
        if threading.get_ident() == self.thread:
            self.slots[self.index] = _first_tensor(output)
