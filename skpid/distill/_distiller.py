"""PIDDistiller: a skorch classifier trained by distillation from a frozen teacher."""

from __future__ import annotations

import contextlib
import difflib
import math
import warnings
import numbers
import zlib

import numpy as np
import torch
from sklearn.base import clone
from skorch import NeuralNetClassifier
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator, to_tensor

from ._hooks import capture, resolve_layers
from ._losses import (METHODS, DistillationLoss, NoDistillation, _eval, check_pair,
                      kd_loss, rid_phase)
from ._teacher import FrozenTeacher

# Loss terms recorded per batch and averaged per epoch in ``history`` (with a
# "train_"/"valid_" prefix): student cross-entropy, the distillation term the student
# minimises, RID's filter-head cross-entropy and filter distance, the logit-KD add-on.
_TERMS = ("ce", "distill", "filter_ce", "distance", "kd")


def softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax: the student's logits → class probabilities (``predict_proba``).

    A module-level function (not a lambda) so that the net pickles.
    """
    return torch.softmax(logits, dim=-1)


def _encoded_accuracy(net, X, y) -> float:
    """Validation accuracy on encoded targets (what the valid split holds), so that the
    default ``valid_acc`` column is right for string labels too."""
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


class PIDDistiller(NeuralNetClassifier):
    """A skorch classifier whose student ``module`` learns from a frozen ``teacher``.

    The loss is ``ce_weight · CE(student, y) + pid_weight · distill`` (plus
    ``kd_weight · KD`` for logit distillation on top of a feature method), where
    ``distill`` is the term of ``method``. RID alternates a teacher-filter phase and a
    student phase inside skorch's ``train_step``: each phase steps only its own optimizer
    (``optimizer_`` for the student side, ``filter_optimizer_`` for RID's teacher filters
    and heads).

    Parameters
    ----------
    module : nn.Module class or instance
        The student; its forward must return class logits. ``module__*`` parameters are
        routed to it as in skorch.
    teacher : nn.Module, fitted skorch net or fitted scikit-learn classifier
        Never trained: in no optimizer, always in eval mode, run under ``no_grad`` and
        moved to ``device`` (in place; it is shared, not copied, by ``clone`` and so by
        ``GridSearchCV``). A scikit-learn teacher (e.g. a random forest) supports logit
        distillation only (``teacher_layers=None``); its logits are
        ``log predict_proba`` (or ``decision_function``).
    method : {"none", "kd", "fitnet", "vid", "rid", "ted"} or DistillationLoss, default="rid"
        The distillation term. A criterion instance is used with its own settings
        (``temperature``, ``rounds``, … below configure only methods given by name);
        ``method__*`` parameters are passed to its constructor.
    pid_weight : float, default=1.0
        α1, the weight of the distillation term (≥ 0).
    ce_weight : float, default=1.0
        α0, the weight of the student's cross-entropy (≥ 0).
    kd_weight : float, default=0.0
        Weight of an added Hinton KD term on the logits, to combine logit KD with a
        feature method (≥ 0).
    teacher_layers, student_layers : list of (str or None), or None, default=None
        Module paths (as in ``named_modules()``, e.g. ``"features.3"``) of the
        representations to pair, in order; ``None`` (or a ``None`` entry) means the
        logits. Both lists must have the same length.
    temperature : float, default=4.0
        KD temperature (``method="kd"`` and ``kd_weight``).
    rounds : int, default=4
        RID's R: teacher/student alternations over ``max_epochs`` (``"ted"`` uses 1).
    teacher_ratio : float, default=0.25
        RID's ρ in (0, 1): share of each round spent training the teacher filters. The
        schedule counts optimizer steps, so ρ·max_epochs/R need not be an integer.
    variance_penalty : {"log", "square"}, default="log"
        RID's penalty on learned variances: ``"log"`` (Gaussian NLL, principled) or
        ``"square"`` (σ⁴, the research code).
    teacher_cache : bool, default=False
        Cache teacher outputs per distinct input row (for a fixed training set without
        random augmentation). Worth it only for teachers slower than hashing and stacking
        rows (forests, large nets): for a small CNN it was no faster in
        ``benchmarks/bench_overhead.py``.
    filter_optimizer : torch optimizer class or None, default=None
        Optimizer of RID's teacher filters and heads (None: the same as ``optimizer``);
        ``filter_optimizer__*`` parameters (``lr`` defaults to ``lr``).
    random_state : int or None, default=None
        Seed of everything random in ``fit`` and ``partial_fit``: the initial weights of
        the student and of the distillation parts, the batch order, dropout. With an
        int, each call runs on torch's generators seeded with it (forked from the global
        state and restored afterwards), so its result does not depend on what ran
        before in the process: a grid search gives the same results serially, with
        joblib processes or on a Dask cluster. None uses torch's global generators as
        they stand.
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        The student's classification loss, applied to its logits.
    predict_nonlinearity : callable, default=softmax_rows
        Maps logits to probabilities in ``predict_proba``.
    **kwargs
        Everything else skorch's :class:`~skorch.NeuralNetClassifier` accepts
        (``lr``, ``max_epochs``, ``batch_size``, ``optimizer``, ``callbacks``,
        ``device``, ``train_split``, ``warm_start``, …).

    Attributes
    ----------
    teacher_ : FrozenTeacher
        The wrapped teacher.
    method_ : DistillationLoss
        The distillation criterion with its learnable parts (built from the shapes
        probed on the first batch of ``fit``).
    classes_ : ndarray
        Class labels (any sortable labels: strings work).

    Notes
    -----
    Decisions on the research code's quirks: the variance penalty is the Gaussian NLL by
    default (``"square"`` is available); no hidden learning-rate schedule (use skorch's
    ``LRScheduler``); phases switch by training progress, not whole epochs; everything is
    seeded by the user (``torch.manual_seed``) and validation uses skorch's
    ``train_split``, never test data; heads pool feature maps by default
    (``method__pool_heads=False`` restores the flattening heads). RID's heads can be fit
    on a held-out share of the training samples with ``method__filter_holdout``.

    The teacher receives the same input as the student (in a Pipeline: the transformed
    features), so fit a scikit-learn teacher on that representation. Learned variances
    (VID, RID) start at softplus(5) ≈ 5; with teacher features of small scale the
    distance terms matter only once they have been learned down (hundreds of steps).
    Distillation parts are built on the first batch of ``fit``: ``save_params`` /
    ``load_params`` of ``f_params`` work on any initialized net, ``f_method`` (the
    distillation parts) only on one that has been fit with the same layer shapes. y is
    encoded to indices into ``classes_`` for training; the default ``valid_acc``
    accounts for that, a custom ``EpochScoring("accuracy")`` compares encoded targets
    with labels and is right only for labels ``0 … n-1``.

    History columns per epoch: ``train_ce``, ``train_distill``, ``train_filter_ce``,
    ``train_distance``, ``train_kd`` (where used), the same with ``valid_``, and
    ``teacher_phase`` (share of the epoch's steps in RID's teacher phase); per batch:
    the same terms and ``phase``. ``train_loss`` is the loss of the stepped phase.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from skpid import PIDDistiller
    >>> X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> teacher = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> student = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> net = PIDDistiller(student, teacher, method="rid", teacher_layers=["1"],
    ...                    student_layers=["1"], max_epochs=2, batch_size=16,
    ...                    train_split=None, verbose=0).fit(X, y)
    >>> net.predict_proba(X[:2]).sum(axis=1).round(5)
    array([1., 1.], dtype=float32)
    >>> [key in net.history[-1] for key in ("train_ce", "train_distill", "train_filter_ce")]
    [True, True, True]
    """

    def __init__(self, module, teacher=None, *, method="rid", pid_weight=1.0,
                 ce_weight=1.0, kd_weight=0.0, teacher_layers=None, student_layers=None,
                 temperature=4.0, rounds=4, teacher_ratio=0.25, variance_penalty="log",
                 teacher_cache=False, filter_optimizer=None, random_state=None,
                 criterion=torch.nn.CrossEntropyLoss, predict_nonlinearity=softmax_rows,
                 **kwargs):
        # Set before skorch's __init__: afterwards skorch refuses to assign a torch module
        # outside an initialize method.
        self.teacher = teacher
        self.method = method
        self.pid_weight = pid_weight
        self.ce_weight = ce_weight
        self.kd_weight = kd_weight
        self.teacher_layers = teacher_layers
        self.student_layers = student_layers
        self.temperature = temperature
        self.rounds = rounds
        self.teacher_ratio = teacher_ratio
        self.variance_penalty = variance_penalty
        self.teacher_cache = teacher_cache
        self.filter_optimizer = filter_optimizer
        self.random_state = random_state
        super().__init__(module, criterion=criterion,
                         predict_nonlinearity=predict_nonlinearity, **kwargs)

    # "method" is a component with its own ``method__*`` parameters, routed by skorch.
    # "teacher" is not a prefix: teacher_layers, teacher_ratio, ... are plain parameters
    # (skorch would take them for teacher__* component parameters), and set_params
    # handles the teacher itself.
    prefixes_ = NeuralNetClassifier.prefixes_ + ["method"]

    @property
    def _default_callbacks(self):
        from skorch.callbacks import EpochScoring
        callbacks = dict(super()._default_callbacks)
        callbacks["valid_acc"] = EpochScoring(_encoded_accuracy, name="valid_acc",
                                              lower_is_better=False)
        return list(callbacks.items())

    # ------------------------------------------------------------------ clone / params
    # Parameters that clones share rather than copy.
    _shared_params = ("teacher",)

    def __sklearn_clone__(self):
        # Like sklearn's clone, except that the frozen teacher is shared: copying it per
        # grid candidate and fold would cost memory and, for a fitted scikit-learn
        # teacher, unfit it.
        params = self.get_params(deep=False)
        shared = {k: params.pop(k) for k in self._shared_params}
        return type(self)(**shared, **{k: clone(v, safe=False) for k, v in params.items()})

    def set_params(self, **kwargs):
        """skorch's ``set_params``; the teacher is set as is (a torch module is not a
        component built by the net) and ``teacher__*`` parameters are refused."""
        built = sorted(k for k in kwargs if k.startswith("teacher__"))
        if built:
            raise ValueError(
                f"{', '.join(built)}: the teacher is passed already built, so teacher__* "
                "parameters cannot configure it; pass a new teacher instead.")
        new_teacher = "teacher" in kwargs
        if new_teacher:
            # bypass skorch's guard against assigning torch modules outside initialize
            vars(self)["teacher"] = kwargs.pop("teacher")
        super().set_params(**kwargs)
        if new_teacher and self.initialized_:
            self.teacher_ = FrozenTeacher(self.teacher, self._layer_lists()[0],
                                          device=self._placement(),
                                          cache=self.teacher_cache)
        return self

    # ------------------------------------------------------------------ seeding
    def fit(self, X, y, **fit_params):
        """Initialize and train the net (skorch's ``fit``), seeded by ``random_state``."""
        with self._seeded():
            return super().fit(X, y, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train on ``X, y`` without re-initializing (skorch's ``partial_fit``), seeded
        by ``random_state``."""
        with self._seeded():
            return super().partial_fit(X, y, classes=classes, **fit_params)

    @contextlib.contextmanager
    def _seeded(self):
        # fit calls partial_fit: seed once, at the outermost call.
        if self.random_state is None or vars(self).get("_seeding", False):
            yield
            return
        seed = _check_seed(self.random_state)
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            vars(self)["_seeding"] = True
            try:
                yield
            finally:
                del vars(self)["_seeding"]

    # ------------------------------------------------------------------ validation
    def _check_settings(self) -> None:
        """Validate the distillation parameters; raise before anything trains."""
        if self.teacher is None:
            raise TypeError("teacher is required: a torch nn.Module, a fitted skorch net "
                            "or a fitted scikit-learn classifier.")
        built = [k for k in vars(self) if k.startswith("teacher__")]
        if built:
            raise ValueError(
                f"{', '.join(sorted(built))}: the teacher is passed already built, so "
                "teacher__* parameters cannot configure it; build the teacher with the "
                "settings you want and pass that instance.")
        method = self.method
        if isinstance(method, str):
            if method not in METHODS:
                close = difflib.get_close_matches(method, list(METHODS), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"method must be one of {sorted(METHODS)} or a "
                                 f"DistillationLoss instance; got {method!r}.{hint}")
        elif not isinstance(method, DistillationLoss):
            raise TypeError("method must be a name or a DistillationLoss instance; got "
                            f"{type(method).__name__}.")
        for name in ("pid_weight", "ce_weight", "kd_weight"):
            value = getattr(self, name)
            if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
        if not isinstance(self.temperature, numbers.Real) or not self.temperature > 0:
            raise ValueError(f"temperature must be > 0; got {self.temperature!r}.")
        if (not isinstance(self.rounds, numbers.Integral) or isinstance(self.rounds, bool)
                or self.rounds < 1):
            raise ValueError(f"rounds must be an integer >= 1; got {self.rounds!r}.")
        if (not isinstance(self.teacher_ratio, numbers.Real)
                or not 0 < self.teacher_ratio < 1):
            raise ValueError("teacher_ratio must be in the open interval (0, 1); got "
                             f"{self.teacher_ratio!r}.")
        if self.variance_penalty not in ("log", "square"):
            raise ValueError("variance_penalty must be 'log' or 'square'; got "
                             f"{self.variance_penalty!r}.")
        t_layers, s_layers = self._layer_lists()
        if len(t_layers) != len(s_layers):
            raise ValueError(
                f"teacher_layers and student_layers are paired in order and must have the "
                f"same length; got {len(t_layers)} and {len(s_layers)}.")

    def _layer_lists(self):
        def as_list(layers, name):
            if layers is None or isinstance(layers, str):
                return [layers]
            if not isinstance(layers, (list, tuple)) or not layers:
                raise ValueError(f"{name} must be None, a module path or a non-empty list "
                                 f"of module paths; got {layers!r}.")
            return list(layers)
        return (as_list(self.teacher_layers, "teacher_layers"),
                as_list(self.student_layers, "student_layers"))

    # ------------------------------------------------------------------ initialize hooks
    def initialize_module(self):
        """Validate the settings, build the student (skorch) and wrap the teacher."""
        self._check_settings()
        super().initialize_module()
        t_layers, s_layers = self._layer_lists()
        resolve_layers(self.module_, s_layers, "student_layers")  # fail early, clearly
        self.teacher_ = FrozenTeacher(self.teacher, t_layers, device=self._placement(),
                                      cache=self.teacher_cache)
        return self

    def _placement(self):
        """Device of the teacher and of the distillation parts: ``device``."""
        return self.device

    def _method(self) -> DistillationLoss:
        """The distillation criterion, also where a data-parallel wrapper holds it."""
        return _unwrap(self.method_)

    def _student(self) -> torch.nn.Module:
        """The student module, also where a data-parallel wrapper holds it."""
        return _unwrap(self.module_)

    def initialize_criterion(self):
        """The student's criterion (skorch) plus the distillation criterion ``method_``."""
        super().initialize_criterion()
        kwargs = self.get_params_for("method")
        if isinstance(self.method, str):
            defaults = {"kd": {"temperature": self.temperature},
                        "rid": {"rounds": self.rounds},
                        "ted": {}}.get(self.method, {})
            if self.method in ("rid", "ted"):
                defaults.update(teacher_ratio=self.teacher_ratio,
                                variance_penalty=self.variance_penalty)
            method = METHODS[self.method](**{**defaults, **kwargs})
        else:
            method = self.initialized_instance(self.method, kwargs)
        self.method_ = method.to(self._placement())
        # Register method_ as a criterion as skorch does for new criteria (it does not do
        # it by itself here because "method" is a known prefix): then it is set to
        # train/eval with the net, saved by save_params and re-initialized by
        # set_params(method__...).
        if "method" not in self._criteria:
            self._criteria = self._criteria + ["method"]
            self.cuda_dependent_attributes_ = self.cuda_dependent_attributes_ + ["method_"]
        self.student_steps_ = 0
        return self

    def get_all_learnable_params(self):
        """Student, student criterion and distillation parts; never the teacher."""
        teacher_ids = {id(p) for p in self.teacher_.parameters()}
        for name, param in super().get_all_learnable_params():
            if id(param) not in teacher_ids:
                yield name, param

    def initialize_optimizer(self, triggered_directly=None):
        """``optimizer_`` for the student side; ``filter_optimizer_`` for RID's teacher
        filters and heads once they are built (they are created on the first batch)."""
        teacher_side = {id(p) for p in self._method().teacher_side_parameters()}
        student_named, filter_named = [], []
        for name, param in self.get_all_learnable_params():
            (filter_named if id(param) in teacher_side else student_named).append((name, param))
        args, kwargs = self.get_params_for_optimizer("optimizer", student_named)
        self.optimizer_ = self.optimizer(*args, **kwargs)
        if filter_named:
            args, kwargs = self.get_params_for_optimizer("filter_optimizer", filter_named)
            self.filter_optimizer_ = (self.filter_optimizer or self.optimizer)(*args, **kwargs)
        elif "filter_optimizer" in self._optimizers:
            # from an earlier RID method: keep the attribute valid but inert
            self.filter_optimizer_ = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0)
        return self

    # ------------------------------------------------------------------ data
    def get_dataset(self, X, y=None):
        """skorch's dataset, with ``y`` encoded as indices into ``classes_``."""
        if y is not None and not isinstance(y, torch.utils.data.Dataset):
            y = self._encode(y)
        return super().get_dataset(X, y)

    def _encode(self, y):
        y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        classes = self.classes_
        idx = np.searchsorted(classes, y)
        idx = np.clip(idx, 0, len(classes) - 1)
        if not np.array_equal(classes[idx], y):
            raise ValueError(f"y holds labels not in classes_ {classes.tolist()}.")
        return idx.astype(np.int64)

    def predict(self, X):
        """Class labels (elements of ``classes_``) of the most probable class."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # ------------------------------------------------------------------ training hooks
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check the data, probe representation shapes on a first batch, build the
        distillation parts and (re)initialize the optimizers, before any training step."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        _check_finite(X)
        self.check_data(X, y)
        classes = self.classes_
        teacher_classes = self.teacher_.classes
        if teacher_classes is not None and (
                len(teacher_classes) != len(classes)
                or not np.array_equal(np.sort(teacher_classes), classes)):
            raise ValueError(
                f"teacher: it predicts classes {np.asarray(teacher_classes).tolist()} but y "
                f"has classes {classes.tolist()}.")
        xb, yb = unpack_data(next(iter(self.get_iterator(self.get_dataset(X, y)))))
        t_logits, t_feats, s_logits, s_feats = self._probe(xb)
        if t_logits.shape[1] != len(classes):
            raise ValueError(f"teacher: it outputs {t_logits.shape[1]} logits but y has "
                             f"{len(classes)} classes.")
        if s_logits.shape[1] != len(classes):
            raise ValueError(f"module: the student outputs {s_logits.shape[1]} logits but y "
                             f"has {len(classes)} classes.")
        t_names, s_names = self._layer_lists()
        t_shapes = [f.shape for f in t_feats]
        s_shapes = [f.shape for f in s_feats]
        method = self._method()
        if method.uses_features:
            for t, s, tn, sn in zip(t_shapes, s_shapes, t_names, s_names):
                check_pair(t, s, tn or "logits", sn or "logits")
        if not method.is_built_for(t_shapes, s_shapes, len(classes)):
            method.build(t_shapes, s_shapes, len(classes))
            method.to(self._placement())
            self.student_steps_ = 0
            # skorch would print "Re-initializing optimizer" for what is, to the user,
            # the first initialization of the distillation parts
            verbose, self.verbose = self.verbose, 0
            try:
                self._initialize_optimizer()
            finally:
                self.verbose = verbose
        self.step_ = 0

    @torch.no_grad()
    def _probe(self, xb, all_layers=False):
        t_logits, t_feats = self.teacher_(xb)
        # probing must not move BatchNorm statistics: eval mode
        with _eval(self.module_), capture(self._student_layer_modules(all_layers)) as slots:
            s_logits = self.module_(to_tensor(xb, device=self._placement()))
        while isinstance(s_logits, (tuple, list)):
            s_logits = s_logits[0]
        n_pairs = len(self._layer_lists()[1])
        s_feats = ([s_logits if s is None else s for s in slots] if slots
                   else [s_logits] * n_pairs)
        return t_logits, t_feats, s_logits, s_feats

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)
        it_params = self.get_params_for("iterator_train")
        batch_size = it_params.get("batch_size", self.batch_size)
        n = len(dataset_train)
        if not batch_size or batch_size < 0:
            per_epoch = 1
        elif it_params.get("drop_last", False):
            per_epoch = max(n // batch_size, 1)
        else:
            per_epoch = math.ceil(n / batch_size)
        self.total_steps_ = self._updates_per_epoch(per_epoch) * self.max_epochs
        method = self._method()
        rounds = getattr(method, "rounds", 1)
        if (getattr(method, "two_phase", False) and not self.history[:-1]
                and self.total_steps_ < 2 * rounds):
            warnings.warn(
                f"RID schedule: {self.total_steps_} optimizer steps for {rounds} rounds; "
                "each round needs at least one teacher and one student step. Lower "
                "rounds, or raise max_epochs or the number of batches.", UserWarning)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Average the per-batch loss terms into epoch columns of ``history``."""
        super().on_epoch_end(net, dataset_train=dataset_train,
                             dataset_valid=dataset_valid, **kwargs)
        batches = self.history[-1, "batches"]
        for prefix in ("train", "valid"):
            for term in _TERMS:
                key = f"{prefix}_{term}"
                rows = [(b[key], b.get(f"{prefix}_batch_size", 1)) for b in batches if key in b]
                if rows:
                    values, weights = zip(*rows)
                    self.history.record(key, float(np.average(values, weights=weights)))
        phases = [b["phase"] for b in batches if "phase" in b]
        if phases:
            self.history.record("teacher_phase", phases.count("teacher") / len(phases))

    def _phase(self) -> str:
        method = self._method()
        if not getattr(method, "two_phase", False):
            return "student"
        rounds = getattr(method, "rounds", self.rounds)
        ratio = getattr(method, "teacher_ratio", self.teacher_ratio)
        return rid_phase(self.step_, getattr(self, "total_steps_", 1), rounds, ratio)[0]

    def _updates_per_epoch(self, n_batches: int) -> int:
        """Optimizer updates per epoch of ``n_batches`` batches (one per batch here)."""
        return n_batches

    def _update_completed(self) -> bool:
        """Whether the train step just taken updated the weights (always, here)."""
        return True

    def _step_phase_optimizer(self, optimizer, step_fn) -> None:
        """Zero the gradients, run ``step_fn`` (forward, loss, backward) and step
        ``optimizer``: as a closure, so that optimizers that re-evaluate the loss
        (LBFGS) work."""
        def closure():
            optimizer.zero_grad()
            return step_fn()

        optimizer.step(closure)

    def train_step(self, batch, **fit_params):
        """One optimization step of the active phase: skorch's step, except that only
        the phase's optimizer is zeroed and stepped."""
        self.phase_ = self._phase()
        method = self._method()
        if self.phase_ == "teacher" and not method.teacher_side_parameters():
            raise RuntimeError("RID teacher phase before the filters were built.")
        if self.phase_ == "teacher":
            optimizer = self.filter_optimizer_
            params = method.teacher_side_parameters()
        else:
            optimizer = self.optimizer_
            params = None
        step_accumulator = self.get_train_step_accumulator()

        def step_fn():
            step = self.train_step_single(batch, **fit_params)
            step_accumulator.store_step(step)
            named = (self.get_all_learnable_params() if params is None else
                     ((str(i), p) for i, p in enumerate(params)))
            self.notify("on_grad_computed", named_parameters=TeeGenerator(named),
                        batch=batch, training=True)
            return step["loss"]

        self._step_phase_optimizer(optimizer, step_fn)
        if method.two_phase:
            self.history.record_batch("phase", self.phase_)
        # The schedule counts weight updates: with gradient accumulation a phase never
        # changes in the middle of an accumulation window.
        if self._update_completed():
            if self.phase_ == "student":
                self.student_steps_ += 1
            self.step_ += 1
        return step_accumulator.get_step()

    def infer(self, x, **fit_params):
        """The student's forward; records the paired student layers while it runs."""
        layers = self._student_layer_modules()
        teacher_step = self.module_.training and getattr(self, "phase_", None) == "teacher"
        if not (layers or teacher_step):  # cross-entropy / logit methods: skorch's infer
            self.student_feats_ = None
            return super().infer(x, **fit_params)
        # In RID's teacher phase the student is only read: no graph, and eval mode so
        # that its BatchNorm statistics do not move either.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not teacher_step), \
                _eval(self.module_, teacher_step), capture(layers) as slots:
            out = super().infer(x, **fit_params)
        self.student_feats_ = slots if layers else None
        return out

    @torch.no_grad()
    def representations(self, X, pair: int = 0):
        """Teacher and student representations of ``X`` at one layer pair.

        Parameters
        ----------
        X : input data (anything skorch accepts, including a Dataset)
        pair : int, default=0
            Index into ``teacher_layers`` / ``student_layers``.

        Returns
        -------
        teacher, student : ndarray of shape (n_samples, ...)
            Activations in eval mode (the logits where the layer is ``None``).
        """
        self.check_is_fitted()
        t_out, s_out = [], []
        for batch in self.get_iterator(self.get_dataset(X), training=False):
            xb, _ = unpack_data(batch)
            _, t_feats, _, s_feats = self._probe(xb, all_layers=True)
            t_out.append(t_feats[pair].cpu().numpy())
            s_out.append(s_feats[pair].cpu().numpy())
        return np.concatenate(t_out), np.concatenate(s_out)

    def _student_layer_modules(self, all_layers=False):
        if not (all_layers or self._method().uses_features):
            return []
        paths = self._layer_lists()[1]
        if all(p is None for p in paths):
            return []
        return resolve_layers(self._student(), paths, "student_layers")

    def _take_student_feats(self, y_pred):
        slots = self.student_feats_ or [None] * len(self._layer_lists()[1])
        self.student_feats_ = None  # do not keep tensors alive (or in pickles)
        return [y_pred if s is None else s for s in slots]

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Weighted sum of the student's cross-entropy and the method's terms; each term
        is recorded in ``history``."""
        y_true = to_tensor(y_true, device=self.device)
        s_feats = self._take_student_feats(y_pred)
        phase = self.phase_ if training else "student"
        prefix = "train" if training else "valid"
        ce = self.criterion_(_as_float32(y_pred), y_true)
        terms = {"ce": ce}
        method = self._method()
        needs_teacher = self.kd_weight > 0 or not isinstance(method, NoDistillation)
        if needs_teacher:
            t_logits, t_feats = self.teacher_(X)
            # Under autocast (mixed precision) forward passes give half-precision
            # tensors; the loss terms are computed from float32 copies.
            t_logits, t_feats = _as_float32(t_logits), [_as_float32(f) for f in t_feats]
            s_feats = [_as_float32(f) for f in s_feats]
            holdout = None
            frac = getattr(method, "filter_holdout", 0.0)
            if phase == "teacher" and frac > 0:
                holdout = _holdout_mask(X, frac).to(y_pred.device)
            terms.update(self.method_(y_pred, t_logits, s_feats, t_feats, y_true,
                                      phase=phase, with_distance=self.student_steps_ > 0,
                                      holdout=holdout))
            if self.kd_weight > 0 and phase == "student":
                terms["kd"] = kd_loss(_as_float32(y_pred), t_logits, self.temperature)
        if phase == "teacher":
            loss = terms["filter_ce"] + terms["distance"]
        else:
            loss = self.ce_weight * ce
            if "distill" in terms:
                loss = loss + self.pid_weight * terms["distill"]
            if "kd" in terms:
                loss = loss + self.kd_weight * terms["kd"]
        for name, value in terms.items():
            self.history.record_batch(f"{prefix}_{name}", float(value.detach()))
        return loss


def _unwrap(module):
    # DistributedDataParallel and DataParallel hold the wrapped module in ``.module``.
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(module, parallel):
        module = module.module
    return module


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.is_floating_point() else tensor


def _check_seed(random_state) -> int:
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2 ** 31))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2 ** 31))
    if (not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool)
            or not 0 <= random_state < 2 ** 63):
        raise ValueError("random_state must be None, an int in [0, 2**63) or a numpy "
                         f"random generator; got {random_state!r}.")
    return int(random_state)


def _check_finite(X) -> None:
    if isinstance(X, torch.Tensor):
        values = X.detach().cpu().numpy()
    elif hasattr(X, "to_numpy"):  # pandas
        values = X.to_numpy()
    else:
        values = X
    if isinstance(values, np.ndarray) and values.dtype.kind in "fc" \
            and not np.isfinite(values).all():
        raise ValueError("X contains NaN or infinity; impute or drop those samples "
                         "before distilling.")


def _holdout_mask(X, fraction: float) -> torch.Tensor:
    """Samples whose input-row hash falls in the held-out share (stable across epochs)."""
    rows = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    rows = rows.reshape(len(rows), -1)
    threshold = int(fraction * 2 ** 32)
    return torch.tensor([zlib.crc32(np.ascontiguousarray(r).tobytes()) < threshold
                         for r in rows])
