"""PIDDistiller on Hugging Face Accelerate: several processes or GPUs (torch DDP), mixed
precision and gradient accumulation, through skorch's ``AccelerateMixin``."""

from __future__ import annotations

import contextlib
import dataclasses
import math

from skorch.callbacks import LRScheduler
from skorch.hf import AccelerateMixin

from ._distiller import PIDDistiller
from ._params import OPTIMIZERS

# The net's torch components (the student, its criterion, the distillation criterion)
_MODULES = ("module", "criterion", "method")


class AcceleratedPIDDistiller(AccelerateMixin, PIDDistiller):
    """:class:`PIDDistiller` trained through an ``accelerate.Accelerator``.

    skorch's :class:`~skorch.hf.AccelerateMixin` composed with :class:`PIDDistiller`,
    with what distillation needs on top of it:

    - the frozen teacher is only placed on the accelerator's device, never wrapped for
      data parallelism (it has no trainable parameters, which DDP rejects); under mixed
      precision it runs inside the training step's autocast;
    - the distillation parts (regressors, RID's filters, heads and variances) are built
      from the first batch of ``fit``, so the student, the criteria and both
      optimizers are prepared right after that, not at ``initialize``; their DDP
      wrappers find unused parameters, since each RID phase trains only its own side;
    - RID's phase schedule counts weight updates: with gradient accumulation a phase
      never changes inside an accumulation window;
    - the loss terms are computed in float32 from the (possibly half-precision)
      representations.

    Launch several processes with ``accelerate launch`` or ``torchrun``; every process
    runs the same script and fits the same net on its share of every epoch's batches.

    Parameters
    ----------
    *args
        ``module`` and ``teacher``, as for :class:`PIDDistiller`.
    accelerator : accelerate.Accelerator
        Mixed precision (``mixed_precision="bf16"`` or ``"fp16"``), gradient
        accumulation (``gradient_accumulation_steps``), device placement. It is shared,
        not copied, by ``clone``.
    device : None, default=None
        Leave placement to the accelerator.
    unwrap_after_train : bool, default=True
        Unwrap the student and criteria after training (``module_`` is then a plain
        torch module).
    callbacks__print_log__sink : "auto" or callable, default="auto"
        Where the epoch log goes; "auto" is the accelerator's ``print`` (main process
        only). Nothing is printed with ``verbose=0``.
    **kwargs
        Every other parameter of :class:`PIDDistiller`.

    See Also
    --------
    PIDDistiller : the same on one device.

    Notes
    -----
    ``random_state`` seeds every process alike, so all ranks start from the same
    weights (DDP also broadcasts rank 0's on wrapping). Each process scores its own
    share in validation; skorch's ``AccelerateMixin`` gathers predictions across
    processes. Nets are pickled after ``unwrap_after_train``; ``save_params`` writes
    from the main process only.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from accelerate import Accelerator
    >>> from torch import nn
    >>> from skpid.distill import AcceleratedPIDDistiller
    >>> X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> teacher = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> student = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> net = AcceleratedPIDDistiller(
    ...     student, teacher, accelerator=Accelerator(cpu=True), method="rid",
    ...     teacher_layers=["1"], student_layers=["1"], max_epochs=2, batch_size=16,
    ...     train_split=None, verbose=0, random_state=0).fit(X, y)
    >>> net.predict(X[:3]).shape
    (3,)
    """

    _shared_params = PIDDistiller._shared_params + ("accelerator",)

    def _placement(self):
        if self.accelerator.device_placement:
            return self.accelerator.device
        return self.device

    def initialize_module(self):
        """Build the student and the teacher wrapper on the accelerator's device."""
        super().initialize_module()
        # The first batch of fit is probed on the accelerator's device before the
        # student is prepared; a new student is not prepared yet (see below).
        self.module_.to(self._placement())
        self._wrapped_with_accelerator = False
        return self

    def initialize_callbacks(self):
        """skorch's callbacks; with ``verbose=0`` the print log stays quiet."""
        # The mixin makes the "auto" sink the accelerator's print, and PrintLog writes
        # to any sink but ``print`` whatever ``verbose`` says.
        if not self.verbose and self.callbacks__print_log__sink == getattr(
                self.accelerator, "print", None):
            self.callbacks__print_log__sink = print
        return super().initialize_callbacks()

    # Private skorch names used here, for want of public hooks: skorch's mixin prepares
    # everything in ``_initialize_accelerator`` at initialize, and records that in
    # ``_wrapped_with_accelerator``, which its ``on_train_end`` reads to unwrap. Both are
    # needed because preparation must wait for the parts built on the first batch.
    def _initialize_accelerator(self):
        # DDP wrapping an unbuilt criterion would never see the parameters added on the
        # first batch: wait until they exist (on_train_begin calls again).
        if self._wrapped_with_accelerator or not self._parts_built():
            return self
        # As the mixin does (modules, criteria, optimizers, LR schedulers), except that
        # components without trainable parameters (the cross-entropy criterion, a method
        # without learnable parts) are only placed: on CPU processes Accelerate would
        # wrap them in DDP, which rejects them. The components are set as attributes
        # skorch has registered, so no initialize context is needed.
        with _finding_unused_parameters(self.accelerator):
            for name in _MODULES:
                self._prepare_module(name)
        for name in OPTIMIZERS:
            setattr(self, name + "_", self.accelerator.prepare(getattr(self, name + "_")))
        for _, callback in self.callbacks_:
            if isinstance(callback, LRScheduler) and hasattr(callback, "policy_"):
                callback.policy_ = self.accelerator.prepare(callback.policy_)
        self._wrapped_with_accelerator = True
        return self

    def _prepare_module(self, name: str) -> None:
        module = getattr(self, name + "_")
        if any(p.requires_grad for p in module.parameters()):
            setattr(self, name + "_", self.accelerator.prepare(module))
        else:
            module.to(self._placement())

    def _parts_built(self) -> bool:
        method = getattr(self, "method_", None)
        return method is not None and hasattr(self._method(), "built_shapes_")

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Build the distillation parts on the first batch, then prepare everything."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._initialize_accelerator()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Give every process rank 0's buffers, then unwrap (the mixin)."""
        # DDP hands rank 0's buffers (BatchNorm statistics) to all ranks before each
        # forward pass; after the last one each rank holds its own. Do that hand-over
        # once more, so that the fitted nets are identical on every rank.
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast
            for name in _MODULES:
                for buffer in getattr(self, name + "_").buffers():
                    broadcast(buffer, from_process=0)
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def _step_phase_optimizer(self, optimizer, step_fn) -> None:
        # Accelerate's optimizer skips step and zero_grad inside an accumulation window
        # (a closure would never run; a gradient scaler takes none): run, step, then
        # zero, so that a window's gradients add up until its last micro-batch.
        step_fn()
        optimizer.step()
        optimizer.zero_grad()

    def __getstate__(self):
        raise TypeError(
            f"{type(self).__name__} cannot be pickled: its accelerate.Accelerator cannot. "
            "Save the weights with save_params(f_params=..., f_method=...) and load "
            "them into a new net, or pickle the trained student (net.module_).")

    def _update_completed(self) -> bool:
        return self.accelerator.sync_gradients

    def _updates_per_epoch(self, n_batches: int) -> int:
        # Each process gets every num_processes-th batch (padded to equal counts), and
        # Accelerate closes an accumulation window at the end of every epoch.
        per_process = math.ceil(n_batches / self.accelerator.num_processes)
        return math.ceil(per_process / self.accelerator.gradient_accumulation_steps)


@contextlib.contextmanager
def _finding_unused_parameters(accelerator):
    """DDP wrappers made inside find the parameters a step did not use: RID's teacher
    phase leaves the student filters and variances without gradient, its student phase
    the teacher filters and heads. Any other DDP settings of the accelerator are kept."""
    from accelerate.utils import DistributedDataParallelKwargs

    handler = getattr(accelerator, "ddp_handler", None)
    if handler is None:
        wanted = DistributedDataParallelKwargs(find_unused_parameters=True)
    else:
        wanted = dataclasses.replace(handler, find_unused_parameters=True)
    accelerator.ddp_handler = wanted
    try:
        yield
    finally:
        accelerator.ddp_handler = handler
