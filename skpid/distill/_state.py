"""What ``save_params`` / ``load_params`` write and read beyond skorch's components, so
that skorch's own recipes (``Checkpoint`` + ``LoadInitState`` with their defaults,
``save_params`` + ``load_params``) resume a distillation exactly.

skorch saves one state dict per file: the student (``f_params``), the student's
criterion (``f_criterion``) and optimizer (``f_optimizer``). A distillation has more:
the criterion's learnable parts (regressors, RID's filters, heads and variances, its
schedule's position and gate), the filter optimizer, the PID gates and the teacher's
measured information. The default files hold them:

- ``f_criterion``: a bundle of the student's criterion, the distillation criterion
  (``method_``) with the shapes it was built for, ``pid_gates_`` and
  ``teacher_information_``;
- ``f_optimizer``: a bundle of both optimizers, with the shapes of the parts the filter
  optimizer and the student's optimizer hold.

Everything in a bundle is a tensor, a number, a string or a container of them, so that
``torch.load(..., weights_only=True)`` (skorch's default) reads it. A plain state dict
(a file skorch wrote) is still read as the student's criterion or optimizer.
"""

from __future__ import annotations

import warnings

import torch
from skorch.history import History

from ._pid_gate import PairGate

CRITERION = "skpid-criterion-1"
OPTIMIZER = "skpid-optimizer-1"


def save_params(net, parent_save, *, f_params=None, f_optimizer=None, f_criterion=None,
                f_history=None, use_safetensors=False, **kwargs) -> None:
    """``net.save_params``: skorch's (``parent_save``) for every file but
    ``f_criterion`` and ``f_optimizer``, which get the bundles."""
    if use_safetensors and (f_criterion is not None or f_optimizer is not None):
        raise ValueError("use_safetensors: f_criterion and f_optimizer of a PIDDistiller "
                         "hold optimizer states and training state, which safetensors "
                         "cannot store; save them with use_safetensors=False.")
    others = {k: v for k, v in dict(f_params=f_params, f_history=f_history,
                                    **kwargs).items() if v is not None}
    if others or (f_criterion is None and f_optimizer is None):
        parent_save(use_safetensors=use_safetensors, **others)
    if f_criterion is not None or f_optimizer is not None:
        net.check_is_fitted(["criterion_", "optimizer_"])
    if f_criterion is not None:
        torch.save(criterion_bundle(net), f_criterion)
    if f_optimizer is not None:
        torch.save(optimizer_bundle(net), f_optimizer)


def load_params(net, parent_load, *, f_params=None, f_optimizer=None, f_criterion=None,
                f_history=None, checkpoint=None, use_safetensors=False, **kwargs) -> None:
    """``net.load_params``: skorch's (``parent_load``) for every file but the bundles,
    then the bundles (parts built from their saved shapes where needed)."""
    files = {}
    if checkpoint is not None:
        if not net.initialized_:
            net.initialize()
        if f_history is None and checkpoint.f_history is not None:
            # as skorch: the history first, which names the checkpoint's files
            net.history = History.from_file(checkpoint.f_history_)
        files.update(checkpoint.get_formatted_files(net))
    files.update({k: v for k, v in dict(f_params=f_params, f_optimizer=f_optimizer,
                                        f_criterion=f_criterion, f_history=f_history,
                                        **kwargs).items() if v is not None})
    f_criterion, f_optimizer = files.pop("f_criterion", None), files.pop("f_optimizer", None)
    files = {k: v for k, v in files.items() if v is not None}
    if files:
        parent_load(use_safetensors=use_safetensors, **files)
    if "f_history" in files:
        restore_best_scores(net)
    if f_criterion is not None:
        load_criterion_bundle(net, load(f_criterion, net))
    if f_optimizer is not None:
        parts_loaded = f_criterion is not None or "f_method" in files
        load_optimizer_bundle(net, load(f_optimizer, net), parts_loaded)


def criterion_bundle(net) -> dict:
    """The content of ``f_criterion``."""
    method = net._method()
    return {"format": CRITERION,
            "criterion": net.criterion_.state_dict(),
            "method": method.state_dict(),
            "method_shapes": getattr(method, "built_shapes_", None),
            "pid_gates": {name: list(gate) for name, gate in
                          getattr(net, "pid_gates_", {}).items()},
            "teacher_information": dict(getattr(net, "teacher_information_", {})),
            "nuisance_layers": sorted(getattr(net, "nuisance_layers_", ()))}


def optimizer_bundle(net) -> dict:
    """The content of ``f_optimizer``."""
    return {"format": OPTIMIZER,
            "optimizer": net.optimizer_.state_dict(),
            "filter_optimizer": net.filter_optimizer_.state_dict(),
            "method_shapes": getattr(net._method(), "built_shapes_", None)}


def load_criterion_bundle(net, state) -> None:
    """Load ``f_criterion``: a bundle, or a plain state dict of the student's
    criterion."""
    if not _is_bundle(state, CRITERION):
        net.criterion_.load_state_dict(state)
        return
    net.criterion_.load_state_dict(state["criterion"])
    ensure_built(net, state["method_shapes"])
    net._method().load_state_dict(state["method"])
    net.pid_gates_ = {name: PairGate(*values) for name, values in state["pid_gates"].items()}
    net.teacher_information_ = dict(state["teacher_information"])
    net.nuisance_layers_ = set(state.get("nuisance_layers", ()))


def load_optimizer_bundle(net, state, parts_loaded: bool) -> None:
    """Load ``f_optimizer``: a bundle, or a plain state dict of the student's
    optimizer. ``parts_loaded``: whether the distillation parts' weights were loaded
    (from ``f_criterion`` or ``f_method``) in the same call."""
    if not _is_bundle(state, OPTIMIZER):
        net.optimizer_.load_state_dict(state)
        return
    built = ensure_built(net, state["method_shapes"])
    if built and not parts_loaded and any(True for _ in net._method().parameters()):
        warnings.warn(
            "load_params: the optimizer state holds moments of the distillation parts "
            "(method_), whose weights were not loaded: they start afresh. Load "
            "f_criterion (which holds them) too, to resume exactly.", UserWarning,
            stacklevel=3)
    net.optimizer_.load_state_dict(state["optimizer"])
    net.filter_optimizer_.load_state_dict(state["filter_optimizer"])


def ensure_built(net, shapes) -> bool:
    """Build the distillation parts for ``shapes`` (saved per-sample shapes) unless they
    are built for them, and rebuild the optimizers that hold them. Whether it built."""
    if shapes is None:
        return False
    method = net._method()
    if getattr(method, "built_shapes_", None) == _as_tuples(shapes):
        return False
    t_shapes, s_shapes, n_classes = _as_tuples(shapes)
    # build() takes batch shapes: a batch of one row has the per-sample shapes
    method.build([(1, *t) for t in t_shapes], [(1, *s) for s in s_shapes], n_classes)
    method.to(net._placement())
    net.initialize_optimizer()
    return True


def restore_best_scores(net) -> None:
    """Give skorch's scoring callbacks the best score of a history just loaded.

    They recover it from the history in ``on_train_begin``, which runs before
    ``LoadInitState`` loads the history (``PassthroughScoring`` never does): without
    this, the first epoch of a resumed run is always marked best (and ``Checkpoint``
    saves it)."""
    for _, callback in net.callbacks_:
        name = getattr(callback, "name_", getattr(callback, "name", None))
        if not isinstance(name, str) or not hasattr(callback, "best_score_"):
            continue
        best = [i for i, row in enumerate(net.history) if row.get(f"{name}_best")]
        if best:
            callback.best_score_ = net.history[best[-1], name]


def _as_tuples(shapes):
    t_shapes, s_shapes, n_classes = shapes
    return (tuple(tuple(int(d) for d in t) for t in t_shapes),
            tuple(tuple(int(d) for d in s) for s in s_shapes), int(n_classes))


def _is_bundle(state, kind: str) -> bool:
    return isinstance(state, dict) and state.get("format") == kind


def load(f, net):
    """``torch.load`` as skorch's ``load_params`` does (device map, its load kwargs)."""
    from skorch.utils import get_map_location
    kwargs = net.torch_load_kwargs if net.torch_load_kwargs is not None else {
        "weights_only": True}
    return torch.load(f, map_location=get_map_location(net.device), **kwargs)

