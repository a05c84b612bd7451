"""The distiller's parameters: their checks, the optimizers built from them, and what
``set_params`` needs on top of skorch's (every skorch workaround in one place).

Every setting is checked where it arrives, by the same check: as a constructor
parameter (at ``fit``), as ``method__*`` (the criterion's constructor runs the same
checks), through ``set_params`` (at once on an initialized net) and in grid searches.
"""

from __future__ import annotations

import difflib

import torch

from .._validation import check_choice, check_flag, check_int, check_real
from ._hooks import resolve_layers
from ._losses import (DistillationLoss, check_optional_rounds, check_teacher_ratio,
                      check_temperature, check_variance_penalty)
from ._methods import METHODS
from ._seeding import check_random_state

# The optimizers the net builds: the student side and RID's teacher filters and heads.
OPTIMIZERS = ("optimizer", "filter_optimizer")
# Net-level parameters handed to the criterion of a method given by name (its
# constructor parameters of the same name).
METHOD_SETTINGS = {"kd": ("temperature",),
                   "rid": ("rounds", "teacher_ratio", "variance_penalty"),
                   "ted": ("teacher_ratio", "variance_penalty")}
# Prefixes of parameters that configure no component: read when an iterator or dataset
# is made.
READ_PER_FIT = ("iterator_train", "iterator_valid", "dataset")

ON_NONFINITE = ("raise", "warn")
# The normalisations that need two rows in training (the distillation parts use these).
_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d,
                torch.nn.SyncBatchNorm)
TEACHER_CHECKS = ("warn", "raise", "ignore")


def method_class(method) -> type:
    """The criterion class ``method`` names or is; a clear error for anything else."""
    if isinstance(method, str):
        if method not in METHODS:
            close = difflib.get_close_matches(method, list(METHODS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"method must be one of {sorted(METHODS)}, a "
                             f"DistillationLoss instance or subclass; got {method!r}.{hint}")
        return METHODS[method]
    if isinstance(method, DistillationLoss):
        return type(method)
    if isinstance(method, type) and issubclass(method, DistillationLoss):
        return method
    raise TypeError("method must be a name, a DistillationLoss instance or a "
                    f"DistillationLoss subclass; got {method!r}.")


def _check_weight(value, name):
    return check_real(value, name, low=0)


def _check_pid_weight(value, name):
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, str):
        raise ValueError(f'{name} must be "auto" or a finite number >= 0; got {value!r}.')
    return check_real(value, name, low=0)


def check_lr(value, name):
    return check_real(value, name, low=0)


def _check_optimizer_class(value, name):
    if value is None and name == "filter_optimizer":
        return value
    if not callable(value):
        alternative = " or None" if name == "filter_optimizer" else ""
        raise TypeError(f"{name} must be a torch optimizer class (e.g. torch.optim.Adam)"
                        f"{alternative}; got {value!r} ({type(value).__name__}).")
    return value


# Each net-level setting and its check (the criteria check their own: see
# DistillationLoss.param_checks). set_params and fit both run these.
SETTINGS = {
    "pid_weight": _check_pid_weight, "ce_weight": _check_weight, "kd_weight": _check_weight,
    "temperature": check_temperature, "rounds": check_optional_rounds,
    "teacher_ratio": check_teacher_ratio, "variance_penalty": check_variance_penalty,
    "teacher_cache": lambda value, name: (value if isinstance(value, str) and value == "auto"
                                          else check_flag(value, name)),
    "on_nonfinite": lambda value, name: check_choice(value, name, ON_NONFINITE),
    "teacher_check": lambda value, name: check_choice(value, name, TEACHER_CHECKS),
    "pid_gate": check_flag,
    "pid_gate_every": lambda value, name: check_int(value, name, minimum=1),
    "random_state": check_random_state, "lr": check_lr,
    "max_epochs": lambda value, name: check_int(value, name, minimum=0),
    "optimizer": _check_optimizer_class, "filter_optimizer": _check_optimizer_class,
}


def layer_lists(net, params=None) -> tuple:
    """``teacher_layers`` and ``student_layers`` of ``net`` as lists (from ``params``
    where it holds them: values about to be set)."""
    params = params or {}

    def as_list(layers, name):
        if layers is None or isinstance(layers, str):
            return [layers]
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ValueError(f"{name} must be None, a module path or a non-empty list "
                             f"of module paths; got {layers!r}.")
        return list(layers)
    return (as_list(params.get("teacher_layers", net.teacher_layers), "teacher_layers"),
            as_list(params.get("student_layers", net.student_layers), "student_layers"))


def _check_paired(net, params=None) -> None:
    t_layers, s_layers = layer_lists(net, params)
    if len(t_layers) != len(s_layers):
        raise ValueError(
            f"teacher_layers and student_layers are paired in order and must have the "
            f"same length; got {len(t_layers)} and {len(s_layers)}.")


def check_settings(net) -> None:
    """Validate the distillation parameters of ``net``; raise before anything trains."""
    if net.teacher is None:
        raise TypeError("teacher is required: a torch nn.Module, a fitted skorch net "
                        "or a fitted scikit-learn classifier.")
    built = [k for k in vars(net) if k.startswith("teacher__")]
    if built:
        raise ValueError(
            f"{', '.join(sorted(built))}: the teacher is passed already built, so "
            "teacher__* parameters cannot configure it; build the teacher with the "
            "settings you want and pass that instance.")
    check_values(net)
    _check_paired(net)


def check_values(net) -> None:
    """Check the values of the settings (cheap: run again before every training)."""
    method_class(net.method)
    for name, check in SETTINGS.items():
        check(getattr(net, name), name)
    for key, value in vars(net).items():
        check_optimizer_param(key, value)


def check_params_given(net, params: dict) -> None:
    """Check the parameters given to ``set_params`` with the checks ``fit`` runs."""
    method = params.get("method", net.method)
    cls = method_class(method)
    # all method__* the criterion will be built with, not only the new ones: a new
    # method may not take the parameters set for the old one
    method_params = {**net.get_params_for("method"),
                     **{k[len("method__"):]: v for k, v in params.items()
                        if k.startswith("method__")}}
    cls.check_params(method_params, prefix="method__")
    for key, value in params.items():
        if key in SETTINGS:
            SETTINGS[key](value, key)
        check_optimizer_param(key, value)
    _check_optimizer_params_given(net, params)
    if "teacher_layers" in params or "student_layers" in params:
        _check_paired(net, params)


def _check_optimizer_params_given(net, params: dict) -> None:
    """skorch sets optimizer parameters on an initialized net in place, where torch
    checks nothing (a momentum of -1, a misspelt name): let the optimizer's constructor
    check them, on a throwaway parameter."""
    for prefix in OPTIMIZERS:
        given = {key[len(prefix) + 2:]: value for key, value in params.items()
                 if key.startswith(prefix + "__") and "__" not in key[len(prefix) + 2:]}
        if not given and prefix not in params and "lr" not in params:
            continue
        cls = params.get(prefix, getattr(net, prefix))
        if prefix == "filter_optimizer" and cls is None:
            cls = params.get("optimizer", net.optimizer)
        kwargs = {**net.get_params_for(prefix), **given}
        kwargs.pop("param_groups", None)
        kwargs.setdefault("lr", params.get("lr", net.lr))
        current = getattr(net, prefix + "_", None)
        dtype = next((p.dtype for group in getattr(current, "param_groups", [])
                      for p in group["params"]), torch.float32)
        placeholder = torch.zeros(1, dtype=dtype, requires_grad=True)
        lr_name = f"{prefix}__lr" if "lr" in given else "lr"
        check_lr_for(kwargs["lr"], [placeholder], lr_name)
        construct_optimizer(prefix, cls, ([placeholder],), kwargs)


def keep_optimizer_params(net, params: dict) -> None:
    """On an initialized net skorch applies ``<optimizer>__<name>`` to the optimizer in
    place but does not keep it: the next ``fit`` rebuilds the optimizer without it. Keep
    it as a parameter (as the constructor does). ``lr`` is kept by skorch; the filter
    optimizer, whose ``lr`` defaults to it, follows it in place."""
    for key, value in params.items():
        name, _, rest = key.partition("__")
        if name in OPTIMIZERS and rest and "__" not in rest:
            setattr(net, key, value)
    if "lr" in params and "filter_optimizer__lr" not in vars(net):
        optimizer = getattr(net, "filter_optimizer_", None)
        for group in getattr(optimizer, "param_groups", []):
            group["lr"] = params["lr"]


def set_plain(net, name: str, value) -> None:
    """Set a parameter that may hold a torch module but is a setting, not a component
    the net builds: the teacher (used as is), a criterion instance as ``method``.

    skorch's ``__setattr__`` takes any torch module assigned outside an ``initialize_*``
    method for a component and refuses it; skorch has no public way to set a
    module-valued plain parameter, so this writes the instance dictionary.
    """
    vars(net)[name] = value


def construct_optimizer(prefix: str, cls, args, kwargs):
    """``cls(*args, **kwargs)``, with torch's refusal naming the net's parameters."""
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        # torch's messages ("Invalid momentum value: -1") do not say which parameter of
        # the net set the value
        given = ", ".join(f"{prefix}__{k}={v!r}" for k, v in kwargs.items())
        raise type(exc)(f"{prefix}: {getattr(cls, '__name__', cls)} refused its "
                        f"parameters ({given}): {exc}") from exc


def check_lr_for(lr, params, name) -> None:
    """A learning rate that the parameters' precision can hold: optimizers scale updates
    by it in that precision (1e300 overflows float32 inside torch's step)."""
    check_lr(lr, name)
    for dtype in {p.dtype for p in params if p.is_floating_point()}:
        limit = torch.finfo(dtype).max
        if lr > limit:
            raise ValueError(f"{name} must be a finite number >= 0 that {dtype} parameters "
                             f"can hold (at most {limit:.4g}); got {lr!r}.")


def check_optimizer_param(key: str, value) -> None:
    """Learning rates given as ``<optimizer>__lr``, ``<optimizer>__param_groups`` or
    ``<optimizer>__param_groups__<i>__lr``: finite and >= 0 (torch takes NaN)."""
    name, _, rest = key.partition("__")
    if name not in OPTIMIZERS or not rest:
        return
    if rest == "lr" or (rest.startswith("param_groups__") and rest.endswith("__lr")):
        check_lr(value, key)
    elif rest == "param_groups":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(entry, (list, tuple)) and len(entry) == 2
                and isinstance(entry[1], dict) for entry in value):
            raise TypeError(f"{key} must be a list of (pattern, options dict) pairs; got "
                            f"{value!r}.")
        for pattern, options in value:
            if "lr" in options:
                check_lr(options["lr"], f"{key} (lr of {pattern!r})")


def build_optimizer(net, prefix: str):
    """A new ``optimizer`` (the student side) or ``filter_optimizer`` of ``net``. The
    filter optimizer without a class of its own is the student's: its class and its
    ``optimizer__*`` settings (``filter_optimizer__*`` take precedence; the learning
    rate is the net's ``lr`` unless ``filter_optimizer__lr`` is set)."""
    teacher_side = {id(p) for p in net._method().teacher_side_parameters()}
    filters = prefix == "filter_optimizer"
    named = [(name, p) for name, p in net.get_all_learnable_params()
             if (id(p) in teacher_side) == filters]
    if not named:  # torch refuses an optimizer without parameters
        named = [("placeholder", torch.zeros(1, requires_grad=True))]
    args, kwargs = net.get_params_for_optimizer(prefix, named)
    cls = getattr(net, prefix)
    if filters and cls is None:
        cls = net.optimizer
        inherited = {k: v for k, v in net.get_params_for("optimizer").items()
                     if k not in ("param_groups", "lr")}
        kwargs = {**inherited, **kwargs}
    lr_name = f"{prefix}__lr" if f"{prefix}__lr" in vars(net) else "lr"
    for group in args[0]:
        check_lr_for(group.get("lr", kwargs["lr"]), group["params"],
                     lr_name if "lr" not in group else f"{prefix}__param_groups")
    return construct_optimizer(prefix, cls, args, kwargs)


def set_params(net, parent_set_params, kwargs: dict):
    """``net.set_params(**kwargs)``, skorch's (``parent_set_params``) with what a
    distiller needs around it; see :meth:`PIDDistiller.set_params`."""
    built = sorted(k for k in kwargs if k.startswith("teacher__"))
    if built:
        raise ValueError(
            f"{', '.join(built)}: the teacher is passed already built, so teacher__* "
            "parameters cannot configure it; pass a new teacher instead.")
    initialized = net.initialized_
    if initialized:
        check_params_given(net, kwargs)
    kwargs = dict(kwargs)
    new_teacher = "teacher" in kwargs
    if new_teacher:
        set_plain(net, "teacher", kwargs.pop("teacher"))
    if isinstance(kwargs.get("method"), torch.nn.Module) and not initialized:
        # an initialized net has registered "method" as a component: skorch sets it
        set_plain(net, "method", kwargs.pop("method"))
    # skorch takes an optimizer class set on an initialized net for a component
    # parameter and fails ("Something went wrong"): set the class as the plain parameter
    # it is and rebuild that optimizer below.
    new_classes = ({k: kwargs.pop(k) for k in OPTIMIZERS if k in kwargs}
                   if initialized else {})
    for name, value in new_classes.items():
        setattr(net, name, value)
    if initialized:
        # skorch rebuilds a component for each prefixed parameter set on an initialized
        # net, and fails ("Something went wrong") for the prefixes that name none: the
        # DataLoaders' and the dataset's, read afresh by every fit.
        for key in [k for k in kwargs if k.partition("__")[0] in READ_PER_FIT]:
            setattr(net, key, kwargs.pop(key))
    parent_set_params(**kwargs)
    if initialized:
        keep_optimizer_params(net, kwargs)
        for name in new_classes:  # only the optimizer given: the other keeps its state
            setattr(net, name + "_", build_optimizer(net, name))
        if {*kwargs, *(["teacher"] if new_teacher else [])} & {
                "teacher", "teacher_layers", "teacher_cache", "student_layers"}:
            # rewrap the teacher for new layers: unknown paths fail here, not at the fit
            net.teacher_ = net._frozen_teacher()
            resolve_layers(net._student(), net._layer_lists()[1], "student_layers")
    if "pid_gate" in kwargs and not net.pid_gate:
        net.pid_gates_ = {}
    return net


def check_batch_size(net) -> None:
    """BatchNorm in the distillation parts cannot normalise one row in training."""
    batch_size = net.get_params_for("iterator_train").get("batch_size", net.batch_size)
    has_batchnorm = any(isinstance(m, _BATCH_NORMS) for m in net._method().modules())
    if has_batchnorm and batch_size == 1:
        raise ValueError(
            f"batch_size=1: the distillation parts of method={net.method!r} normalise over "
            "the batch (BatchNorm) and need training batches of at least 2 rows.")
