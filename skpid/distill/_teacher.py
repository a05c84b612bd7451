"""The frozen teacher: one interface over torch modules, fitted skorch nets and fitted
scikit-learn classifiers.

A teacher is never trained here: it is in no optimizer, always in eval mode (BatchNorm
statistics and dropout untouched) and run under ``torch.no_grad``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._arrays import to_numpy
from ._hooks import capture, check_captured, resolve_layers

# Probabilities are clipped before the log so that a teacher that is certain (a forest
# voting unanimously) still gives finite logits.
_PROBA_FLOOR = 1e-6
#: The most bytes of teacher outputs a cache keeps.
CACHE_BYTES = 2 ** 30
#: Multiply-adds per row above which a torch teacher's forward costs more than looking
#: its outputs up (a digest of the row and a gather): ``teacher_cache="auto"`` caches
#: such teachers. Measured per epoch of KD (CPU time, one thread): an MLP teacher of 8e4
#: multiply-adds a row ran 54 ms without the cache and 45 ms with it on 2,000 rows, and
#: 601-696 ms against 613-642 ms on 20,000 (an earlier, busier measurement found it
#: slower: 127 against 112 ms); a CNN of 1e6 ran 150 ms against 95 ms. The threshold
#: sits below that MLP, where a forward is too cheap for the lookup to gain much.
CACHE_MACS = 5e4
# The layers whose multiply-adds are counted (``weight[0]`` holds one output's inputs).
_COUNTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _is_skorch_net(obj) -> bool:
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a dependency
        return False
    return isinstance(obj, NeuralNet)


class FrozenTeacher:
    """A teacher that maps a batch to (logits, [representations at the chosen layers]).

    Parameters
    ----------
    teacher : nn.Module, fitted skorch net or fitted scikit-learn classifier
        The teacher, used as is (not copied): a torch module is put in eval mode and
        moved to ``device`` in place.
    layers : sequence of str or None
        Module paths of the representations to return; ``None`` is the logits. Only
        ``None`` is allowed for a scikit-learn teacher.
    device : str or torch.device
        Where the torch teacher runs.
    cache : bool, default=False
        Remember the outputs for each distinct input row (keyed by its bytes), so that a
        fixed training set is run through the teacher once. At most
        :data:`CACHE_BYTES` of outputs are kept: rows beyond that are run through the
        teacher every time (random data augmentation makes every sample a new row).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> t = FrozenTeacher(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)),
    ...                   layers=["1"], device="cpu")
    >>> logits, (hidden,) = t(torch.zeros(2, 4))
    >>> logits.shape, hidden.shape, t.classes
    (torch.Size([2, 3]), torch.Size([2, 8]), None)
    """

    def __init__(self, teacher, layers: Sequence[str | None] = (), device="cpu",
                 cache: bool = False):
        self.layers = list(layers)
        self.device = device
        self.cache = cache
        self._clear_cache()
        self.classes = None
        self.module = None
        self.estimator = None
        self._log_output = False
        if isinstance(teacher, nn.Module):
            self.module = teacher
        elif _is_skorch_net(teacher):
            if not getattr(teacher, "initialized_", False):
                raise ValueError("teacher: the skorch net is not initialized; fit it "
                                 "(or call .initialize()) before distilling from it.")
            self.module = teacher.module_
            self.classes = _classes_or_none(teacher)
            # Nets trained with NLLLoss output probabilities: their log is a logit vector.
            self._log_output = isinstance(teacher.criterion_, nn.NLLLoss)
        elif hasattr(teacher, "predict_proba") or hasattr(teacher, "decision_function"):
            try:
                check_is_fitted(teacher)
            except (NotFittedError, TypeError) as exc:
                raise ValueError(f"teacher: {type(teacher).__name__} is not fitted; fit "
                                 "it before distilling from it.") from exc
            self.estimator = teacher
            self.classes = _classes_or_none(teacher)
            paths = [p for p in self.layers if p is not None]
            if paths:
                raise ValueError(
                    f"teacher_layers: a scikit-learn teacher ({type(teacher).__name__}) "
                    f"exposes only its outputs; use teacher_layers=None, got {paths}.")
        else:
            raise TypeError(
                "teacher must be a torch nn.Module, a fitted skorch net or a fitted "
                "scikit-learn classifier (with predict_proba or decision_function); got "
                f"{type(teacher).__name__}.")
        if self.module is not None:
            self._layer_modules = resolve_layers(self.module, self.layers, "teacher_layers")
            self.module.to(device)
            self.module.eval()

    @property
    def is_torch(self) -> bool:
        return self.module is not None

    def parameters(self):
        """The teacher's torch parameters (empty for a scikit-learn teacher)."""
        return [] if self.module is None else list(self.module.parameters())

    def __call__(self, X):
        """Return ``(logits, [representation per layer])`` for one batch, without grad."""
        if not self.cache:
            return self._forward(X)
        keys = _row_keys(X)
        slots = [self._slots.get(key) for key in keys]
        missing = [i for i, slot in enumerate(slots) if slot is None]
        if len(missing) == len(keys):  # every row new: the teacher runs on the batch
            logits, feats = self._forward(X)
            self._remember(keys, slots, [logits, *feats])
            return logits, feats
        index = torch.as_tensor([0 if slot is None else slot for slot in slots],
                                device=self._store[0].device)
        outputs = [stored.index_select(0, index) for stored in self._store]
        if missing:
            # only the rows not seen yet run the teacher (eval mode: a row's outputs do
            # not depend on its batch), e.g. the few the teacher check did not measure
            logits, feats = self._forward(_take_rows(X, missing))
            fresh = [logits, *feats]
            self._remember([keys[i] for i in missing], [None] * len(missing), fresh)
            rows = torch.as_tensor(missing, device=index.device)
            for output, new in zip(outputs, fresh):
                output.index_copy_(0, rows, new.to(output.device))
        return outputs[0], outputs[1:]

    def _remember(self, keys, slots, outputs) -> None:
        """Keep the outputs of the rows not cached yet, within :data:`CACHE_BYTES`."""
        new = [i for i, slot in enumerate(slots) if slot is None]
        row_bytes = sum(o[0].numel() * o.element_size() for o in outputs)
        room = (CACHE_BYTES - self._n * row_bytes) // max(row_bytes, 1)
        new = new[:max(int(room), 0)]
        if not new:
            return
        rows = torch.as_tensor(new, device=outputs[0].device)
        needed = self._n + len(new)
        if not self._store or needed > len(self._store[0]):  # grow by doubling
            size = max(needed, 2 * len(self._store[0]) if self._store else 256)
            grown = [o.new_empty((size, *o.shape[1:])) for o in outputs]
            for old, fresh in zip(self._store, grown):
                fresh[:self._n] = old[:self._n]
            self._store = grown
        for stored, output in zip(self._store, outputs):
            stored[self._n:needed] = output.index_select(0, rows)
        for k, i in enumerate(new):
            self._slots[keys[i]] = self._n + k
        self._n = needed

    @torch.no_grad()
    def worth_caching(self, X) -> bool:
        """Whether caching pays for this teacher: a scikit-learn teacher (its
        ``predict_proba`` is slow), or a torch teacher whose forward takes more than
        :data:`CACHE_MACS` multiply-adds a row (counted on the batch ``X``, from its
        linear and convolution layers: the same answer on every machine)."""
        if self.module is None:
            return True
        counts = []

        def count(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            per_output = (module.in_features if isinstance(module, nn.Linear) else
                          module.weight[0].numel())  # conv: in / groups × kernel
            counts.append(out.numel() * per_output)

        layers = [m for m in self.module.modules() if isinstance(m, _COUNTED_LAYERS)]
        handles = [m.register_forward_hook(count) for m in layers]
        try:
            self._forward(X)
        finally:
            for handle in handles:
                handle.remove()
        return sum(counts) / max(len(X if not isinstance(X, Mapping)
                                     else next(iter(X.values()))), 1) >= CACHE_MACS

    @property
    def cached_rows(self) -> int:
        """How many distinct rows the cache holds."""
        return self._n

    def _clear_cache(self) -> None:
        self._slots, self._store, self._n = {}, [], 0

    @torch.no_grad()
    def _forward(self, X):
        if self.module is None:
            logits = self._sklearn_logits(X)
            return logits, [logits for _ in self.layers]
        if self.module.training:
            # Someone (a user, or a framework iterating over modules) flipped it back.
            self.module.eval()
        X = _to_device(X, self.device, self._dtype())
        with capture(self._layer_modules) as slots:
            # skorch's convention for several inputs: a dict of keyword arguments
            out = self.module(**X) if isinstance(X, Mapping) else self.module(X)
        check_captured(slots, self.layers, "teacher_layers", "teacher")
        while isinstance(out, (tuple, list)):
            out = out[0]
        if self._log_output:
            out = torch.log(out.clamp_min(_PROBA_FLOOR))
        feats = [out if s is None else s for s in slots]
        return out, feats

    def _dtype(self):
        """The floating dtype of the teacher's parameters (inputs are cast to it: a
        float64 teacher may teach a float32 student), or None."""
        return next((p.dtype for p in self.module.parameters() if p.is_floating_point()),
                    None)

    def _sklearn_logits(self, X):
        if isinstance(X, Mapping):
            raise TypeError(
                f"X: a scikit-learn teacher ({type(self.estimator).__name__}) takes one "
                f"array, not a dict of inputs ({', '.join(map(str, X))}).")
        Xn = np.asarray(to_numpy(X))
        Xn = Xn.reshape(len(Xn), -1)
        if hasattr(self.estimator, "predict_proba"):
            z = np.log(np.clip(self.estimator.predict_proba(Xn), _PROBA_FLOOR, None))
        else:
            z = np.asarray(self.estimator.decision_function(Xn), dtype=float)
            if z.ndim == 1:  # binary: a single margin for the positive class
                z = np.stack([-z / 2, z / 2], axis=1)
        return torch.as_tensor(z, dtype=torch.float32, device=self.device)

    def __getstate__(self):
        state = self.__dict__.copy()
        # the cache is a run-time convenience, not model state
        state.update(_slots={}, _store=[], _n=0)
        return state


def _classes_or_none(estimator):
    try:
        return np.asarray(estimator.classes_)
    except AttributeError:
        return None


def _row_keys(X) -> list:
    """One key per row of a batch (an array, a tensor or a dict of them): its bytes."""
    parts = [X[key] for key in sorted(X)] if isinstance(X, Mapping) else [X]
    arrays = [np.ascontiguousarray(to_numpy(p)) for p in parts]
    return [b"".join(a[i].tobytes() for a in arrays) for i in range(len(arrays[0]))]


def _take_rows(X, rows: list):
    """Rows ``rows`` of a batch (an array, a tensor or a dict of them)."""
    if isinstance(X, Mapping):
        return {k: _take_rows(v, rows) for k, v in X.items()}
    if isinstance(X, torch.Tensor):
        return X.index_select(0, torch.as_tensor(rows, device=X.device))
    return np.asarray(X)[rows]


def _to_device(X, device, dtype=None):
    """A batch on the teacher's device; floating inputs in the teacher's dtype."""
    if isinstance(X, Mapping):
        return {k: _to_device(v, device, dtype) for k, v in X.items()}
    X = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if dtype is not None and X.is_floating_point() and X.dtype != dtype:
        X = X.to(dtype)
    return X.to(device)
