"""PIDDistiller: a skorch classifier trained by distillation from a frozen teacher."""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers
import threading
import warnings
import zlib
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import clone
from skorch import NeuralNetClassifier
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator, to_tensor
from torch.utils.data import DataLoader, Subset

from .._labels import fit_labels, transform_labels
from .._pid._validation import check_choice, check_flag, check_int, check_real
from ..exceptions import NuisanceTeacherWarning
from ._callbacks import _DistillerPrintLog
from ._hooks import capture, resolve_layers
from ._losses import (METHODS, DistillationLoss, NoDistillation, _eval, check_pair,
                      check_rounds, check_teacher_ratio, check_temperature,
                      check_variance_penalty, kd_loss, rid_phase)
from ._pid_gate import LOGITS, MIN_ROWS, GateMeter
from ._teacher import FrozenTeacher
from ._teacher_check import LEVEL, subsample_rows, teacher_information

# Loss terms recorded per batch and averaged per epoch in ``history`` (with a
# "train_"/"valid_" prefix): student cross-entropy, the distillation term the student
# minimises, RID's filter-head cross-entropy and filter distance, the logit-KD add-on.
_TERMS = ("ce", "distill", "filter_ce", "distance", "kd", "gate")

# The optimizers the net builds: the student side and RID's teacher filters and heads.
_OPTIMIZERS = ("optimizer", "filter_optimizer")
# Net-level parameters handed to the criterion of a method given by name (its
# constructor parameters of the same name).
_METHOD_SETTINGS = {"kd": ("temperature",),
                    "rid": ("rounds", "teacher_ratio", "variance_penalty"),
                    "ted": ("teacher_ratio", "variance_penalty")}
# Prefixes of parameters that configure no component: read when an iterator or dataset
# is made.
_READ_PER_FIT = ("iterator_train", "iterator_valid", "dataset")

ON_NONFINITE = ("raise", "warn")
TEACHER_CHECKS = ("warn", "raise", "ignore")

# Seeded fits set torch's global generators (dropout has no other source of randomness)
# and restore them afterwards. torch has one global generator per device for the whole
# process, so two seeded fits in two threads would draw from, and restore over, each
# other's state: they take this lock for the whole call. Re-entrant: a seeded fit inside
# a seeded fit (a callback fitting another net) runs in the same thread.
_SEED_LOCK = threading.RLock()
# The DataLoader generators of the seeded calls running in this thread, by id(net).
_SEEDED = threading.local()


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
        The distillation term. For a method given by name, the net-level settings
        (``temperature`` for KD; ``rounds``, ``teacher_ratio``, ``variance_penalty`` for
        RID and TED) are passed to its criterion's constructor, and ``method__*``
        parameters too; where both name a setting (``rounds`` and ``method__rounds``),
        ``method__*`` takes precedence. A criterion instance or class is used with its
        own settings and the ``method__*`` parameters; the net-level ones do not
        apply to it. The schedule reads the settings from the built criterion
        (``method_``).
    pid_weight : float or "auto", default="auto"
        α1, the weight of the distillation term (≥ 0). ``"auto"``: the method's
        recommended weight (``recommended_weight`` of its criterion): 10 for ``"rid"``
        and ``"ted"`` (the paper's α1), 1 for ``"kd"``, ``"fitnet"`` and ``"vid"``. VID's
        paper uses 100, which gains more from a good teacher but loses 5–15 points under
        a nuisance one (``benchmarks/bench_distill_quality.py``).
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
    rounds : int, default=10
        RID's R: teacher/student alternations over ``max_epochs`` (``"ted"`` uses 1).
    teacher_ratio : float, default=0.25
        RID's ρ in (0, 1): share of each round spent training the teacher filters. The
        schedule counts optimizer steps, so ρ·max_epochs/R need not be an integer.
    variance_penalty : {"fixed", "log", "square"}, default="fixed"
        RID's variances σ²: ``"fixed"`` (not learned: σ² = ``method__variance_init``, 1
        by default, on standardised targets), or learned with the penalty ``"log"``
        (Gaussian NLL) or ``"square"`` (σ⁴, the research code). See
        :class:`~skpid.distill.RIDLoss`.
    teacher_cache : bool, default=False
        Cache teacher outputs per distinct input row (for a fixed training set without
        random augmentation). Worth it for teachers slower than hashing and stacking
        rows: KD from a 300-tree random forest into an MLP on digits ran 15 times
        faster per epoch (1.48 s → 0.095 s); for a CNN teacher twice as wide as its
        student it saved 13 % (``benchmarks/bench_overhead.py``).
    filter_optimizer : torch optimizer class or None, default=None
        Optimizer of RID's teacher filters and heads (None: the same as ``optimizer``).
        ``filter_optimizer__*`` parameters configure it as ``optimizer__*`` do the
        student's (``lr`` defaults to ``lr``): in the constructor, through
        ``set_params`` before or after a fit, and in grid searches. It exists from
        ``initialize`` on; until the filters are built on the first batch of ``fit``
        (and for methods without them) it holds a placeholder parameter only.
    random_state : int, numpy random generator or None, default=None
        Seed of everything random in ``fit`` and ``partial_fit``: the initial weights of
        the student (where the net builds it: ``module`` given as a class; an instance
        keeps the weights it has) and of the distillation parts, the batch order,
        dropout. The batch order comes from torch generators of the call's own (given to
        the DataLoaders unless ``iterator_train__generator`` /
        ``iterator_valid__generator`` are set); weights and dropout come from torch's
        global generators, seeded for the call and restored afterwards. So the result
        does not depend on what ran before, and the global generators are left as they
        were. Seeded calls hold a process-wide lock: seeded fits in several threads run
        one after the other and give exactly what each gives alone. torch has no
        per-thread generator, so torch code that draws from the global generators in
        another thread during a seeded fit (an unseeded fit, say) can still interleave
        with the weight initialization and, for models with dropout, with the dropout
        masks. A grid search gives the same results serially, with joblib processes or
        threads, or on a Dask cluster. None uses torch's global generators as they
        stand.
    on_nonfinite : {"raise", "warn"}, default="raise"
        What a NaN or infinite loss term does: ``"raise"`` stops training with a
        ``FloatingPointError`` naming the epoch, the batch, the term (``ce``,
        ``distill``, ``filter_ce``, ``distance``, ``kd`` or the weighted sum) and, where
        it can tell, the cause (a teacher or student layer whose output is not finite,
        parameters that diverged). ``"warn"`` issues a ``RuntimeWarning`` with the same
        message instead (once per epoch) and trains on, taking the step as computed
        (parameters may then become non-finite): for runs where occasional overflows
        are expected and handled, as under fp16 mixed precision with a gradient scaler,
        which skips such steps.
    teacher_check : {"warn", "raise", "ignore"}, default="warn"
        Before training, measure the task information I(Y;T) of every paired teacher
        representation (the logits where the layer is None) on the training data (a
        subsample of at most 2,000 rows, seeded by ``random_state``, 0 unless it is an
        int): the estimators' discretization (normalise, PCA 5, KMeans 10), the plug-in
        mutual information with its permutation bias correction, and a permutation
        test (199 label permutations). A representation whose p-value is above 0.01 is
        indistinguishable from one with no task information, a *nuisance* teacher:
        ``"warn"`` issues a :class:`~skpid.exceptions.NuisanceTeacherWarning` naming
        the layer, the estimate and the p-value; ``"raise"`` raises a ``ValueError``
        with the same message. The estimates are kept in ``teacher_information_``.
    pid_gate : bool, default=False
        Scale the distillation term of each layer pair (and the logit terms:
        ``method="kd"``, ``kd_weight``) by a gate in [0, 1] measured with PID on held-out
        rows (the validation split of ``train_split``; the training rows without one):
        ``1[p ≤ 0.01] · min(1, share / 0.1)``, where p is the permutation p-value of
        the teacher representation's I(Y;T) (as ``teacher_check``) and ``share`` is
        Uni(Y: T\\S) / I(Y;T), the share of the teacher's task information the student
        does not hold yet. A nuisance teacher's term is switched off; a term is reduced
        once the student holds over 90 % of what the teacher layer knows about Y.
        Recorded per epoch in ``history`` as ``gate_0``, ``gate_1``, … (one per layer
        pair) and ``gate_kd`` (the logits); the latest measurements are in
        ``pid_gates_``. See the user guide, "PID-guided distillation".
    pid_gate_every : int, default=5
        Re-measure the gates every this many epochs (from the first epoch of each
        ``fit`` / ``partial_fit`` call on; ≥ 1).
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        The student's classification loss, applied to its logits.
    predict_nonlinearity : callable, default=softmax_rows
        Maps logits to probabilities in ``predict_proba``.
    optimizer : torch optimizer class, default=torch.optim.Adam
        The student side's optimizer (skorch's default is SGD).
    lr : float, default=1e-2
        Learning rate of Adam. scikit-learn's ``MLPClassifier`` uses 1e-3 over up to
        200 epochs; in 50 epochs 1e-2 trains the bundled students better (a
        ``SmallCNN(width=4)`` on digits: 0.97 test accuracy against 0.90 with 1e-3).
    max_epochs : int, default=50
        Training epochs (skorch's default is 10).
    batch_size : int, default=64
        Rows per batch (skorch's default is 128).
    **kwargs
        Everything else skorch's :class:`~skorch.NeuralNetClassifier` accepts
        (``callbacks``, ``device``, ``train_split``, ``warm_start``,
        ``iterator_train__*``, …). Training batches are shuffled by default
        (``iterator_train__shuffle=True``; skorch does not shuffle).

    Attributes
    ----------
    teacher_ : FrozenTeacher
        The wrapped teacher.
    filter_optimizer_ : torch optimizer
        The optimizer of RID's teacher filters and heads.
    teacher_information_ : dict
        Bias-corrected I(Y;T) in bits of each paired teacher layer (``"logits"`` for
        None), measured by ``teacher_check`` at the start of ``fit`` (empty with
        ``teacher_check="ignore"``).
    pid_gates_ : dict
        With ``pid_gate=True``: the latest measurement of each gate (``"gate_0"``, …,
        ``"gate_kd"``) as a ``PairGate`` (``gate``, ``share``, ``unique_teacher``,
        ``mi_teacher`` in bits, ``p_value``).
    method_ : DistillationLoss
        The distillation criterion with its learnable parts (built from the shapes
        probed on the first batch of ``fit``).
    classes_ : ndarray
        Class labels (any sortable labels: strings work).

    Notes
    -----
    Defaults that differ from skorch's, so that a scikit-learn user who changes
    nothing gets a student that trains well (measured on the bundled ``MLP`` and
    ``SmallCNN`` students):

    ====================================  ===============  ==================
    setting                               skpid            skorch
    ====================================  ===============  ==================
    ``optimizer``                         Adam             SGD
    ``lr``                                1e-2 (Adam)      0.01 (SGD)
    ``max_epochs``                        50               10
    ``batch_size``                        64               128
    ``iterator_train__shuffle``           True             False
    ``pid_weight``                        ``"auto"``       (skpid only)
    ``rounds`` (RID)                      10               (skpid only)
    ====================================  ===============  ==================

    ``X`` may be any real-valued array: numpy of any real dtype (float64 as scikit-learn
    transformers return, float16, integers), a pandas DataFrame or a torch tensor; it is
    cast to the student's parameter dtype. A training epoch whose last batch would hold
    one row drops that batch (BatchNorm cannot normalise a single row in training
    mode); shuffled, a different row sits out each epoch.

    ``method="rid"`` is the paper's RID (α1 = 10, R = 10, ρ = 0.25) with four changes,
    each measured in ``benchmarks/bench_distill_quality.py`` (user guide, "Distillation
    methods"): an information gate that scales the distillation term by the share of
    the label entropy the filtered teacher explains on training rows its head never fit
    (0 for a nuisance teacher); teacher-filtered targets standardised per channel;
    fixed unit variances instead of learned ones; and student cross-entropy steps during
    the teacher phases. The research code's variant is ``variance_penalty="square",
    method__variance_init=5.0, method__normalize=False, method__info_gate=False,
    method__pool_heads=False, method__concurrent=False``. Other decisions on the
    research code's quirks: no hidden learning-rate schedule (use skorch's
    ``LRScheduler``); phases switch by training progress, not whole epochs; everything
    is seeded by the user (``random_state``) and validation uses skorch's
    ``train_split``, never test data.

    The teacher receives the same input as the student (in a Pipeline: the transformed
    features), so fit a scikit-learn teacher on that representation. VID's learned
    variances start at softplus(5) ≈ 5; with teacher features of small scale its
    distance term matters only once they have been learned down (hundreds of steps).
    Distillation parts are built on the first batch of ``fit``: ``save_params`` /
    ``load_params`` of ``f_params`` work on any initialized net, ``f_method`` (the
    distillation parts) only on one that has been fit with the same layer shapes. y is
    encoded to indices into ``classes_`` for training; the default ``valid_acc``
    accounts for that, a custom ``EpochScoring("accuracy")`` compares encoded targets
    with labels and is right only for labels ``0 … n-1``.

    History columns per epoch: ``train_ce``, ``train_distill``, ``train_filter_ce``,
    ``train_distance``, ``train_gate`` (RID's information gate, mean over layer pairs),
    ``train_kd`` (where used), the same with ``valid_``, and
    ``teacher_phase`` (share of the epoch's steps in RID's teacher phase); per batch:
    the same terms and ``phase``. ``train_loss`` is the loss of the stepped phase. The
    printed table has a column for each of them (and for :class:`PIDMonitor`'s values)
    from the first epoch on; a cell is blank in epochs without that value.

    Every setting is checked where it arrives, by the same check: as a parameter, as
    ``method__*`` (the criterion's constructor runs the same checks), through
    ``set_params`` (at once on an initialized net, whose components skorch updates
    immediately; otherwise at ``fit``) and in grid searches. Errors are ``TypeError``
    (wrong kind of value) or ``ValueError`` (out of range, NaN, infinite) and name the
    parameter, the value and what is expected.

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

    def __init__(self, module, teacher=None, *, method="rid", pid_weight="auto",
                 ce_weight=1.0, kd_weight=0.0, teacher_layers=None, student_layers=None,
                 temperature=4.0, rounds=10, teacher_ratio=0.25, variance_penalty="fixed",
                 teacher_cache=False, filter_optimizer=None, random_state=None,
                 on_nonfinite="raise", teacher_check="warn", pid_gate=False,
                 pid_gate_every=5, criterion=torch.nn.CrossEntropyLoss,
                 predict_nonlinearity=softmax_rows, optimizer=torch.optim.Adam, lr=1e-2,
                 max_epochs=50, batch_size=64, **kwargs):
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
        self.on_nonfinite = on_nonfinite
        self.teacher_check = teacher_check
        self.pid_gate = pid_gate
        self.pid_gate_every = pid_gate_every
        # Shuffled training batches, as scikit-learn's MLPClassifier (skorch does not
        # shuffle by default): rows grouped by class would otherwise train badly, silently.
        kwargs.setdefault("iterator_train__shuffle", True)
        # Training defaults that train the bundled students well (Adam, as scikit-learn's
        # MLPClassifier) rather than skorch's (SGD, lr 0.01, 10 epochs, batches of 128),
        # with which they barely train.
        super().__init__(module, criterion=criterion,
                         predict_nonlinearity=predict_nonlinearity, optimizer=optimizer,
                         lr=lr, max_epochs=max_epochs, batch_size=batch_size, **kwargs)

    @property
    def _default_callbacks(self):
        from skorch.callbacks import EpochScoring
        callbacks = dict(super()._default_callbacks)
        callbacks["valid_acc"] = EpochScoring(_encoded_accuracy, name="valid_acc",
                                              lower_is_better=False)
        callbacks["print_log"] = _DistillerPrintLog()
        return list(callbacks.items())

    def _history_keys(self) -> list:
        """The epoch keys of ``history`` this fit can record, declared before the first
        epoch so that the printed table has a column for each from the start: the loss
        terms the method returns in either phase, and the keys of callbacks that declare
        theirs (:class:`PIDMonitor`)."""
        method = self._method()
        two_phase = getattr(method, "two_phase", False)
        needs_teacher = self.kd_weight > 0 or not isinstance(method, NoDistillation)
        student = ["ce"]
        if needs_teacher:
            student += list(getattr(method, "student_terms", ("distill",)))
            student += ["kd"] if self.kd_weight > 0 else []
        train = student + (list(getattr(method, "teacher_terms", ())) if two_phase else [])
        keys = [f"train_{term}" for term in train]
        if self.train_split is not None:
            keys += [f"valid_{term}" for term in student]
        keys += ["teacher_phase"] if two_phase else []
        keys += self._gate_names() if self.pid_gate else []
        for _, callback in self.callbacks_:
            declare = getattr(callback, "_history_keys", None)
            if callable(declare):
                keys += declare(self)
        return keys

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
        """skorch's ``set_params``, with the settings checked first on an initialized net.

        skorch applies parameters to an initialized net at once (``method__*`` rebuild
        the criterion, optimizer parameters change the optimizers in place), so they
        are checked before anything changes: a refused value leaves the net as it was.
        On a net not initialized yet they are checked by ``fit`` (as scikit-learn
        recommends). The teacher is set as is (a torch module is not a component built
        by the net) and ``teacher__*`` parameters are refused. Optimizer parameters
        (``optimizer__*``, ``filter_optimizer__*``) set on an initialized net are also
        kept as parameters, so that a later ``fit``, which rebuilds the optimizers,
        uses them too.
        """
        built = sorted(k for k in kwargs if k.startswith("teacher__"))
        if built:
            raise ValueError(
                f"{', '.join(built)}: the teacher is passed already built, so teacher__* "
                "parameters cannot configure it; pass a new teacher instead.")
        initialized = self.initialized_
        if initialized:
            self._check_params_given(kwargs)
        new_teacher = "teacher" in kwargs
        if new_teacher:
            self._set_module_setting("teacher", kwargs.pop("teacher"))
        if isinstance(kwargs.get("method"), torch.nn.Module) and not initialized:
            # an initialized net has registered "method" as a component: skorch sets it
            self._set_module_setting("method", kwargs.pop("method"))
        # skorch takes an optimizer class set on an initialized net for a component
        # parameter and fails ("Something went wrong"): set the class as the plain
        # parameter it is and rebuild the optimizers below.
        new_classes = ({k: kwargs.pop(k) for k in _OPTIMIZERS if k in kwargs}
                       if initialized else {})
        for name, value in new_classes.items():
            setattr(self, name, value)
        if initialized:
            # skorch rebuilds a component for each prefixed parameter set on an
            # initialized net, and fails ("Something went wrong") for the prefixes that
            # name none: the DataLoaders' and the dataset's, read afresh by every fit.
            for key in [k for k in kwargs if k.partition("__")[0] in _READ_PER_FIT]:
                setattr(self, key, kwargs.pop(key))
        super().set_params(**kwargs)
        if initialized:
            self._keep_optimizer_params(kwargs)
            if new_classes:
                self.initialize_optimizer()
        if new_teacher and initialized:
            self.teacher_ = FrozenTeacher(self.teacher, self._layer_lists()[0],
                                          device=self._placement(),
                                          cache=self.teacher_cache)
        return self

    def _set_module_setting(self, name, value) -> None:
        """Set a parameter that may hold a torch module but is a setting, not a component
        the net builds: the teacher (used as is), a criterion instance as ``method``.

        skorch's ``__setattr__`` takes any torch module assigned outside an
        ``initialize_*`` method for a component and refuses it; skorch has no public way
        to set a module-valued plain parameter, so this writes the instance dictionary.
        """
        vars(self)[name] = value

    def _check_optimizer_params_given(self, params: dict) -> None:
        """skorch sets optimizer parameters on an initialized net in place, where torch
        checks nothing (a momentum of -1, a misspelt name): let the optimizer's
        constructor check them, on a throwaway parameter."""
        for prefix in _OPTIMIZERS:
            given = {key[len(prefix) + 2:]: value for key, value in params.items()
                     if key.startswith(prefix + "__") and "__" not in key[len(prefix) + 2:]}
            if not given and prefix not in params and "lr" not in params:
                continue
            cls = params.get(prefix, getattr(self, prefix))
            if prefix == "filter_optimizer" and cls is None:
                cls = params.get("optimizer", self.optimizer)
            kwargs = {**self.get_params_for(prefix), **given}
            kwargs.pop("param_groups", None)
            kwargs.setdefault("lr", params.get("lr", self.lr))
            current = getattr(self, prefix + "_", None)
            dtype = next((p.dtype for group in getattr(current, "param_groups", [])
                          for p in group["params"]), torch.float32)
            placeholder = torch.zeros(1, dtype=dtype, requires_grad=True)
            lr_name = f"{prefix}__lr" if "lr" in given else "lr"
            _check_lr_for(kwargs["lr"], [placeholder], lr_name)
            _construct_optimizer(prefix, cls, ([placeholder],), kwargs)

    def _keep_optimizer_params(self, params) -> None:
        """On an initialized net skorch applies ``<optimizer>__<name>`` to the optimizer
        in place but does not keep it: the next ``fit`` rebuilds the optimizer without
        it. Keep it as a parameter (as the constructor does). ``lr`` is kept by skorch;
        the filter optimizer, whose ``lr`` defaults to it, follows it in place."""
        for key, value in params.items():
            name, _, rest = key.partition("__")
            if name in _OPTIMIZERS and rest and "__" not in rest:
                setattr(self, key, value)
        if "lr" in params and "filter_optimizer__lr" not in vars(self):
            optimizer = getattr(self, "filter_optimizer_", None)
            for group in getattr(optimizer, "param_groups", []):
                group["lr"] = params["lr"]

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
        active = _active_seeded()
        # fit calls partial_fit: seed once, at the outermost call.
        if self.random_state is None or id(self) in active:
            yield
            return
        seed = _check_seed(self.random_state)
        # Distinct streams for the global generator (weights, dropout) and the two
        # DataLoaders, so that the batch order does not repeat the weights' draws.
        train_seed, valid_seed = np.random.SeedSequence(seed).generate_state(2)
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with _SEED_LOCK, torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            active[id(self)] = {
                "iterator_train": torch.Generator().manual_seed(int(train_seed)),
                "iterator_valid": torch.Generator().manual_seed(int(valid_seed))}
            try:
                yield
            finally:
                del active[id(self)]

    def get_params_for(self, prefix):
        """skorch's ``get_params_for``; in a seeded call the DataLoaders also get the
        call's own generator (unless ``iterator_*__generator`` is set), so that the
        batch order neither draws from nor depends on torch's global generator."""
        params = super().get_params_for(prefix)
        if prefix == "iterator_train" and "drop_last" not in params:
            n_rows = getattr(_ITERATING, "n_rows", None)
            if n_rows is not None and _single_row_tail(
                    n_rows, params.get("batch_size", self.batch_size)):
                params["drop_last"] = True
        generators = _active_seeded().get(id(self))
        if (generators is not None and prefix in generators and "generator" not in params
                and _is_dataloader(getattr(self, prefix, None))):
            params["generator"] = generators[prefix]
        return params

    def effective_pid_weight(self) -> float:
        """``pid_weight``, with ``"auto"`` resolved to the method's recommended weight."""
        if isinstance(self.pid_weight, str):
            return float(self._method().recommended_weight)
        return float(self.pid_weight)

    def get_iterator(self, dataset, training=False):
        """skorch's ``get_iterator``; a training epoch whose last batch would hold a
        single row drops that batch (one row, a different one each epoch when shuffled):
        BatchNorm cannot normalise one row in training mode. Set
        ``iterator_train__drop_last`` yourself to decide otherwise."""
        _ITERATING.n_rows = len(dataset) if training else None
        try:
            return super().get_iterator(dataset, training=training)
        finally:
            _ITERATING.n_rows = None

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
        self._check_values()
        t_layers, s_layers = self._layer_lists()
        if len(t_layers) != len(s_layers):
            raise ValueError(
                f"teacher_layers and student_layers are paired in order and must have the "
                f"same length; got {len(t_layers)} and {len(s_layers)}.")

    def _check_values(self) -> None:
        """Check the values of the settings (cheap: run again before every training)."""
        _method_class(self.method)
        for name, check in _SETTINGS.items():
            check(getattr(self, name), name)
        for key, value in vars(self).items():
            _check_optimizer_param(key, value)

    def _check_params_given(self, params: dict) -> None:
        """Check the parameters given to ``set_params`` with the checks ``fit`` runs."""
        method = params.get("method", self.method)
        cls = _method_class(method)
        # all method__* the criterion will be built with, not only the new ones: a new
        # method may not take the parameters set for the old one
        method_params = {**self.get_params_for("method"),
                         **{k[len("method__"):]: v for k, v in params.items()
                            if k.startswith("method__")}}
        cls.check_params(method_params, prefix="method__")
        for key, value in params.items():
            if key in _SETTINGS:
                _SETTINGS[key](value, key)
            _check_optimizer_param(key, value)
        self._check_optimizer_params_given(params)
        if "teacher_layers" in params or "student_layers" in params:
            t_layers, s_layers = self._layer_lists(params)
            if len(t_layers) != len(s_layers):
                raise ValueError(
                    f"teacher_layers and student_layers are paired in order and must have "
                    f"the same length; got {len(t_layers)} and {len(s_layers)}.")

    def _layer_lists(self, params=None):
        """``teacher_layers`` and ``student_layers`` as lists (from ``params`` where it
        holds them: values about to be set)."""
        params = params or {}

        def as_list(layers, name):
            if layers is None or isinstance(layers, str):
                return [layers]
            if not isinstance(layers, (list, tuple)) or not layers:
                raise ValueError(f"{name} must be None, a module path or a non-empty list "
                                 f"of module paths; got {layers!r}.")
            return list(layers)
        return (as_list(params.get("teacher_layers", self.teacher_layers), "teacher_layers"),
                as_list(params.get("student_layers", self.student_layers), "student_layers"))

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
        # set_params(method=..., method__...) on an initialized net comes straight here
        cls = _method_class(self.method)
        kwargs = self.get_params_for("method")
        # The constructor runs the same checks; here they name the parameters as the
        # user gave them (method__rounds, not rounds).
        cls.check_params(kwargs, prefix="method__")
        if isinstance(self.method, str):
            # the net-level settings are the source; method__* given too take precedence
            settings = {name: getattr(self, name)
                        for name in _METHOD_SETTINGS.get(self.method, ())}
            method = cls(**{**settings, **kwargs})
        else:
            method = self.initialized_instance(self.method, kwargs)
        # Set inside skorch's criterion context, so skorch registers method_ as it does
        # any new criterion: set to train/eval with the net, moved to the device, saved
        # by save_params(f_method=...), and "method__*" parameters routed to it and
        # rebuilding it (constructor, set_params, grid searches).
        self.method_ = method.to(self._placement())
        self.student_steps_ = 0
        return self

    def get_all_learnable_params(self):
        """Student, student criterion and distillation parts; never the teacher."""
        teacher_ids = {id(p) for p in self.teacher_.parameters()}
        for name, param in super().get_all_learnable_params():
            if id(param) not in teacher_ids:
                yield name, param

    def initialize_optimizer(self, triggered_directly=None):
        """``optimizer_`` for the student side, ``filter_optimizer_`` for RID's teacher
        filters and heads.

        Both are built from ``initialize`` on, so that skorch registers both the way it
        registers any optimizer made here, and routes ``filter_optimizer__*`` as it
        routes ``optimizer__*`` (constructor, ``set_params``, grid searches). The
        filters only exist from the first batch of ``fit``, which calls this again;
        until then, and for methods without filters, the filter optimizer holds a
        placeholder parameter (torch refuses an optimizer without parameters).
        """
        teacher_side = {id(p) for p in self._method().teacher_side_parameters()}
        student_named, filter_named = [], []
        for name, param in self.get_all_learnable_params():
            (filter_named if id(param) in teacher_side else student_named).append((name, param))
        if not filter_named:
            filter_named = [("placeholder", torch.zeros(1, requires_grad=True))]
        self.optimizer_ = self._build_optimizer("optimizer", self.optimizer, student_named)
        self.filter_optimizer_ = self._build_optimizer(
            "filter_optimizer", self.filter_optimizer or self.optimizer, filter_named)
        return self

    def _build_optimizer(self, prefix, cls, named_parameters):
        args, kwargs = self.get_params_for_optimizer(prefix, named_parameters)
        lr_name = f"{prefix}__lr" if f"{prefix}__lr" in vars(self) else "lr"
        for group in args[0]:
            _check_lr_for(group.get("lr", kwargs["lr"]), group["params"],
                          lr_name if "lr" not in group else f"{prefix}__param_groups")
        return _construct_optimizer(prefix, cls, args, kwargs)

    # ------------------------------------------------------------------ data
    def check_data(self, X, y=None):
        """skorch's check (and inference of ``classes_``), with clear errors for labels
        that cannot be classes: NaN, or a mix of types that cannot be sorted."""
        if y is not None and not isinstance(y, torch.utils.data.Dataset):
            fit_labels(y, "y")  # the package's one label check: same errors everywhere
        super().check_data(X, y)

    def get_dataset(self, X, y=None):
        """skorch's dataset, with ``y`` encoded as indices into ``classes_`` and a
        real-valued ``X`` (numpy of any real dtype, pandas, torch tensors) cast to the
        student's parameter dtype, as scikit-learn estimators accept any real input."""
        if y is not None and not isinstance(y, torch.utils.data.Dataset):
            y = self._encode(y)
        return super().get_dataset(self._cast_input(X), y)

    def _cast_input(self, X):
        if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # a pandas DataFrame
            X = X.to_numpy()
        module = getattr(self, "module_", None)
        params = next(module.parameters(), None) if module is not None else None
        dtype = params.dtype if params is not None else torch.float32
        if isinstance(X, torch.Tensor):
            convertible = X.is_floating_point() or (X.dtype != torch.bool
                                                     and not X.is_complex())
            return X.to(dtype) if convertible and X.dtype != dtype else X
        if isinstance(X, np.ndarray) and X.dtype.kind in "fiu":
            np_dtype = torch.empty((), dtype=dtype).numpy().dtype
            return X if X.dtype == np_dtype else X.astype(np_dtype)
        return X

    def _encode(self, y):
        return transform_labels(y, self.classes_, "y")

    def predict(self, X):
        """Class labels (elements of ``classes_``) of the most probable class."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # ------------------------------------------------------------------ training hooks
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check the data, probe representation shapes on a first batch, build the
        distillation parts and (re)initialize the optimizers, before any training step."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # fit has checked them in initialize; partial_fit and warm starts have not
        self._check_values()
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
        try:
            t_logits, t_feats, s_logits, s_feats = self._probe(xb)
        except RuntimeError as exc:
            hint = _dtype_mismatch(xb, self._student(), self.teacher_)
            if hint is None:
                raise
            raise TypeError(f"{hint} ({exc})") from exc
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
            # the optimizers now take the new parts (registered at initialize already)
            self.initialize_optimizer()
        if not len(self.history):  # a new fit, not partial_fit or a warm start
            self._check_teacher(X, y)
        if self.pid_gate:
            # one meter per call: its rows and teacher codes hold for this call's data
            self._gate_meter = GateMeter(self._gate_names(), self._fit_seed())
            self._gate_start = len(self.history)
            self.pid_gates_ = {}
        self.step_ = 0

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Drop the gate meter's per-call data (rows, teacher codes)."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        self._gate_meter = None

    @torch.no_grad()
    def _check_teacher(self, X, y) -> None:
        """``teacher_check``: measure I(Y;T) of every paired teacher representation on
        (a seeded subsample of) the training data; warn or raise for those
        indistinguishable from no task information."""
        self.teacher_information_ = {}
        if self.teacher_check == "ignore":
            return
        dataset = self.get_dataset(X, y)
        seed = self._fit_seed()
        t_layers = self._layer_lists()[0]
        reps, _, labels = self._gather(dataset, subsample_rows(len(dataset), seed),
                                       range(len(t_layers)), student=False)
        # information does not depend on what the labels are called: codes 0..k-1
        labels = np.unique(labels, return_inverse=True)[1].ravel()
        for layer, values in zip(t_layers, reps):
            name = layer or "logits"
            if name in self.teacher_information_:  # a layer paired twice
                continue
            if not np.isfinite(values).all():
                # nothing to measure; training reports the non-finite teacher output
                continue
            info = teacher_information(values, labels, random_state=seed)
            self.teacher_information_[name] = info.bits
            if info.p_value > LEVEL:
                self._report_nuisance(name, info)

    def _fit_seed(self) -> int:
        """The seed of the measurements of a fit (``random_state`` if an int, else 0)."""
        return self.random_state if isinstance(self.random_state, numbers.Integral) else 0

    @torch.no_grad()
    def _gather(self, dataset, rows, pairs, student=True):
        """The teacher's (and the student's) representations at each of ``pairs`` (a
        layer pair index, or None for the logits) over ``rows`` of ``dataset``, as float32
        arrays, and the labels: ``(teacher, student or None, labels)``."""
        pairs = list(pairs)
        teacher, students, labels = [[] for _ in pairs], [[] for _ in pairs], []
        for batch in self.get_iterator(Subset(dataset, rows), training=False):
            xb, yb = unpack_data(batch)
            if student:
                t_logits, t_feats, s_logits, s_feats = self._probe(xb, all_layers=True)
            else:
                t_logits, t_feats = self.teacher_(xb)
            for k, pair in enumerate(pairs):
                teacher[k].append(_numpy(t_logits if pair is None else t_feats[pair]))
                if student:
                    students[k].append(_numpy(s_logits if pair is None else s_feats[pair]))
            labels.append(np.asarray(yb.cpu() if isinstance(yb, torch.Tensor) else yb))
        return ([np.concatenate(t) for t in teacher],
                [np.concatenate(s) for s in students] if student else None,
                np.concatenate(labels).ravel())

    def _report_nuisance(self, name, info) -> None:
        message = (
            f"teacher layer {name!r} holds no measurable task information: I(Y;T) = "
            f"{info.bits:.3f} bits (plug-in {info.plugin_bits:.3f}), permutation p-value "
            f"{info.p_value:.3f} > {LEVEL} on {info.n_samples} training rows. Distilling "
            "a nuisance teacher can only cost the student accuracy: check that the "
            "teacher is trained and sees the task's input, pair another layer, or pass "
            "teacher_check='ignore'.")
        if self.teacher_check == "raise":
            raise ValueError(message)
        warnings.warn(message, NuisanceTeacherWarning, stacklevel=2)

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
        drop_last = it_params.get("drop_last", _single_row_tail(n, batch_size))
        if not batch_size or batch_size < 0:
            per_epoch = 1
        elif drop_last:
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
        if self.pid_gate:
            self._update_gates(dataset_train, dataset_valid)

    # ------------------------------------------------------------------ pid_gate
    def _gate_names(self) -> list:
        """The gates of this fit: one per layer pair for a feature method, one for the
        logits (``method="kd"`` or another logit method, ``kd_weight``)."""
        method = self._method()
        names = []
        if method.uses_features:
            names += [f"gate_{k}" for k in range(len(self._layer_lists()[0]))]
        elif not isinstance(method, NoDistillation):
            names.append(LOGITS)
        if self.kd_weight > 0 and LOGITS not in names:
            names.append(LOGITS)
        return names

    def _update_gates(self, dataset_train, dataset_valid) -> None:
        """Measure the gates on the first epoch of a call and every ``pid_gate_every``
        epochs after it; record the current ones in this epoch's history row."""
        names = self._gate_names()
        # epochs of this fit / partial_fit call so far (this epoch's row exists already)
        epoch = len(self.history) - 1 - self._gate_start
        if epoch % self.pid_gate_every == 0:
            dataset = next((d for d in (dataset_valid, dataset_train)
                            if d is not None and len(d) >= MIN_ROWS), None)
            if dataset is not None:
                self.pid_gates_ = self._measure_gates(dataset, names)
            elif epoch == 0:
                warnings.warn(
                    f"pid_gate: {len(dataset_train)} training rows, fewer than the "
                    f"{MIN_ROWS} needed to measure the gates; they stay open (1).",
                    UserWarning, stacklevel=2)
        for name in names:
            gate = self.pid_gates_.get(name)
            self.history.record(name, 1.0 if gate is None else gate.gate)

    def _measure_gates(self, dataset, names) -> dict:
        # gate_k is pair k (names list the pairs in order, the logits' gate last)
        pairs = [None if name == LOGITS else k for k, name in enumerate(names)]
        teacher, student, labels = self._gather(
            dataset, self._gate_meter.rows(len(dataset)), pairs)
        return self._gate_meter.measure(teacher, student, labels)

    def _gate(self, name: str) -> float:
        gate = getattr(self, "pid_gates_", {}).get(name) if self.pid_gate else None
        return 1.0 if gate is None else gate.gate

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
        step_accumulator = self._take_step(optimizer, params, batch, **fit_params)
        if self.phase_ == "teacher" and getattr(method, "concurrent", False):
            # The student keeps learning in the teacher phase (cross-entropy, plus KD if
            # kd_weight > 0, on the same batch): the teacher phases cost it no steps.
            self.phase_ = "student_ce"
            try:
                self._take_step(self.optimizer_, None, batch, **fit_params)
            finally:
                self.phase_ = "teacher"
        if method.two_phase:
            self.history.record_batch("phase", self.phase_)
        # The schedule counts weight updates: with gradient accumulation a phase never
        # changes in the middle of an accumulation window.
        if self._update_completed():
            if self.phase_ == "student":
                self.student_steps_ += 1
            self.step_ += 1
        return step_accumulator.get_step()

    def _take_step(self, optimizer, params, batch, **fit_params):
        """Forward, loss and backward on ``batch`` (skorch's ``train_step_single``), then
        a step of ``optimizer``; ``params`` are the parameters it updates (None: all)."""
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
        return step_accumulator

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

    def _pair_weights(self, device) -> torch.Tensor:
        """``pid_gate``'s gate of each layer pair, for the criterion's per-pair terms."""
        n_pairs = len(self._layer_lists()[0])
        return torch.tensor([self._gate(f"gate_{k}") for k in range(n_pairs)],
                            dtype=torch.float32, device=device)

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
        # "student_ce": RID's concurrent student step in a teacher phase (no distance)
        needs_method = not (isinstance(method, NoDistillation) or phase == "student_ce")
        needs_teacher = self.kd_weight > 0 or needs_method
        teacher_out = None
        if needs_teacher:
            t_logits, t_feats = teacher_out = self.teacher_(X)
            # Under autocast (mixed precision) forward passes give half-precision
            # tensors; the loss terms are computed from float32 copies.
            t_logits, t_feats = _as_float32(t_logits), [_as_float32(f) for f in t_feats]
            s_feats = [_as_float32(f) for f in s_feats]
            if needs_method:
                row_hash = None
                if phase == "teacher" and getattr(method, "needs_row_hash", False):
                    row_hash = _row_hashes(X).to(y_pred.device)
                weights = (self._pair_weights(y_pred.device)
                           if self.pid_gate and method.uses_features else None)
                per_pair = weights is not None and method.weights_pairs
                terms.update(self.method_(y_pred, t_logits, s_feats, t_feats, y_true,
                                          phase=phase,
                                          with_distance=self.student_steps_ > 0,
                                          row_hash=row_hash,
                                          **({"pair_weights": weights} if per_pair else {})))
                if self.pid_gate and "distill" in terms and not per_pair:
                    # logit methods: the logits' gate; a criterion without per-pair
                    # weights: the mean gate of its pairs
                    terms["distill"] = terms["distill"] * (
                        self._gate(LOGITS) if weights is None else weights.mean())
            if self.kd_weight > 0 and phase != "teacher":
                terms["kd"] = (kd_loss(_as_float32(y_pred), t_logits, self.temperature)
                               * self._gate(LOGITS))
        if phase == "teacher":
            loss = terms["filter_ce"] + terms["distance"]
        else:
            loss = self.ce_weight * ce
            if "distill" in terms:
                loss = loss + self.effective_pid_weight() * terms["distill"]
            if "kd" in terms:
                loss = loss + self.kd_weight * terms["kd"]
        values = {name: float(value.detach()) for name, value in terms.items()}
        for name, value in values.items():
            self.history.record_batch(f"{prefix}_{name}", value)
        total = float(loss.detach())
        if not (math.isfinite(total) and all(map(math.isfinite, values.values()))):
            self._report_nonfinite(values, total, training, phase, X, y_pred, s_feats,
                                   teacher_out)
        return loss

    # ------------------------------------------------------------------ non-finite losses
    def _report_nonfinite(self, values, total, training, phase, X, y_pred, s_feats,
                          teacher_out) -> None:
        """Raise (or warn about) a NaN or infinite loss: which epoch, batch and term,
        and where it can tell, why."""
        bad = [f"{name}={value}" for name, value in values.items()
               if not math.isfinite(value)]
        if bad:
            what = f"loss term {', '.join(bad)}"
            cause = self._nonfinite_cause(X, y_pred, s_feats, teacher_out)
        else:
            terms = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
            what = f"the weighted sum of the terms (the loss) is {total} ({terms})"
            cause = ("The terms are finite: their weighted sum overflowed (look at "
                     "ce_weight, pid_weight and kd_weight).")
        epoch, where = self._batch_position(training)
        two_phase = getattr(self._method(), "two_phase", False)
        phase_text = f" ({phase} phase)" if two_phase and training else ""
        message = f"Non-finite loss at {where}{phase_text}: {what}. {cause}"
        if self.on_nonfinite == "raise":
            raise FloatingPointError(
                f"{message} Training stopped; on_nonfinite='warn' trains on regardless.")
        # one warning per epoch: once parameters are NaN every batch would warn
        if getattr(self, "nonfinite_warned_epoch_", None) != epoch:
            self.nonfinite_warned_epoch_ = epoch
            warnings.warn(f"{message} (Further non-finite batches of this epoch are not "
                          "reported.)", RuntimeWarning, stacklevel=2)

    def _batch_position(self, training):
        """(epoch, "epoch e, training batch b") of the batch being computed."""
        if not len(self.history):
            return None, "a batch outside fit"
        row = self.history[-1]
        batches = row.get("batches", [])
        # training batches come first in an epoch; the current one is not recorded yet
        n_train = sum(1 for b in batches if "train_batch_size" in b)
        if training:
            return row.get("epoch"), f"epoch {row.get('epoch')}, training batch {n_train + 1}"
        return row.get("epoch"), (f"epoch {row.get('epoch')}, validation batch "
                                  f"{len(batches) - n_train}")

    def _nonfinite_cause(self, X, y_pred, s_feats, teacher_out) -> str:
        if isinstance(X, torch.Tensor) and not _all_finite(X):
            return "The input batch X holds NaN or infinity."
        t_names, s_names = self._layer_lists()
        if teacher_out is not None:
            t_logits, t_feats = teacher_out
            teacher = f"The teacher ({type(self.teacher).__name__})"
            for i, (name, feats) in enumerate(zip(t_names, t_feats)):
                if name is not None and not _all_finite(feats):
                    return (f"{teacher} outputs NaN or infinity at teacher_layers[{i}] "
                            f"= {name!r}.")
            if not _all_finite(t_logits):
                return f"{teacher} outputs NaN or infinity in its logits (its output)."
        student = f"The student ({type(self._student()).__name__})"
        if not _all_finite(y_pred):
            cause = f"{student} outputs NaN or infinity in its logits (its output)"
        else:
            cause = next((f"{student} outputs NaN or infinity at student_layers[{i}] = "
                          f"{name!r}" for i, (name, feats) in enumerate(zip(s_names, s_feats))
                          if name is not None and not _all_finite(feats)), None)
        diverged = [part for part, module in (("student", self._student()),
                                              ("distillation parts (method_)",
                                               self._method()))
                    if not all(_all_finite(p) for p in module.parameters())]
        if diverged:
            return ((cause + ": " if cause else "") + f"the parameters of the "
                    f"{' and the '.join(diverged)} are no longer finite: training "
                    "diverged (a smaller lr may help).")
        if cause:
            return cause + "."
        return ("The inputs, the teacher's and the student's outputs and parameters are "
                "finite: the term itself overflowed (look at temperature and the scale of "
                "the representations).")


def _unwrap(module):
    # DistributedDataParallel and DataParallel hold the wrapped module in ``.module``.
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(module, parallel):
        module = module.module
    return module


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.is_floating_point() else tensor


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A representation as a float32 numpy array on the CPU."""
    return _as_float32(tensor).cpu().numpy()


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


def _all_finite(tensor) -> bool:
    return not isinstance(tensor, torch.Tensor) or bool(torch.isfinite(tensor).all())


def _method_class(method) -> type:
    """The criterion class ``method`` names or is; a clear error for anything else."""
    if isinstance(method, str):
        if method not in METHODS:
            close = difflib.get_close_matches(method, list(METHODS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"method must be one of {sorted(METHODS)} or a "
                             f"DistillationLoss instance; got {method!r}.{hint}")
        return METHODS[method]
    if isinstance(method, DistillationLoss):
        return type(method)
    raise TypeError("method must be a name or a DistillationLoss instance; got "
                    f"{type(method).__name__}.")


def _check_weight(value, name):
    return check_real(value, name, low=0)


def _check_pid_weight(value, name):
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, str):
        raise ValueError(f'{name} must be "auto" or a finite number >= 0; got {value!r}.')
    return check_real(value, name, low=0)


def _check_lr(value, name):
    return check_real(value, name, low=0)


def _check_optimizer_class(value, name):
    if value is None and name == "filter_optimizer":
        return value
    if not callable(value):
        alternative = " or None" if name == "filter_optimizer" else ""
        raise TypeError(f"{name} must be a torch optimizer class (e.g. torch.optim.Adam)"
                        f"{alternative}; got {value!r} ({type(value).__name__}).")
    return value


def _check_random_state(value, name="random_state"):
    """What ``_check_seed`` accepts, without drawing from a generator."""
    if value is None or isinstance(value, (np.random.RandomState, np.random.Generator)):
        return value
    return _check_seed(value)


# Each net-level setting and its check (the criteria check their own: see
# DistillationLoss.param_checks). set_params and fit both run these.
_SETTINGS = {
    "pid_weight": _check_pid_weight, "ce_weight": _check_weight, "kd_weight": _check_weight,
    "temperature": check_temperature, "rounds": check_rounds,
    "teacher_ratio": check_teacher_ratio, "variance_penalty": check_variance_penalty,
    "teacher_cache": check_flag,
    "on_nonfinite": lambda value, name: check_choice(value, name, ON_NONFINITE),
    "teacher_check": lambda value, name: check_choice(value, name, TEACHER_CHECKS),
    "pid_gate": check_flag,
    "pid_gate_every": lambda value, name: check_int(value, name, minimum=1),
    "random_state": _check_random_state, "lr": _check_lr,
    "max_epochs": lambda value, name: check_int(value, name, minimum=0),
    "optimizer": _check_optimizer_class, "filter_optimizer": _check_optimizer_class,
}


def _construct_optimizer(prefix, cls, args, kwargs):
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        # torch's messages ("Invalid momentum value: -1") do not say which parameter of
        # the net set the value
        given = ", ".join(f"{prefix}__{k}={v!r}" for k, v in kwargs.items())
        raise type(exc)(f"{prefix}: {getattr(cls, '__name__', cls)} refused its "
                        f"parameters ({given}): {exc}") from exc


def _check_lr_for(lr, params, name) -> None:
    """A learning rate that the parameters' precision can hold: optimizers scale updates
    by it in that precision (1e300 overflows float32 inside torch's step)."""
    _check_lr(lr, name)
    for dtype in {p.dtype for p in params if p.is_floating_point()}:
        limit = torch.finfo(dtype).max
        if lr > limit:
            raise ValueError(f"{name} must be a finite number >= 0 that {dtype} parameters "
                             f"can hold (at most {limit:.4g}); got {lr!r}.")


def _check_optimizer_param(key: str, value) -> None:
    """Learning rates given as ``<optimizer>__lr``, ``<optimizer>__param_groups`` or
    ``<optimizer>__param_groups__<i>__lr``: finite and >= 0 (torch takes NaN)."""
    name, _, rest = key.partition("__")
    if name not in _OPTIMIZERS or not rest:
        return
    if rest == "lr" or (rest.startswith("param_groups__") and rest.endswith("__lr")):
        _check_lr(value, key)
    elif rest == "param_groups":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(entry, (list, tuple)) and len(entry) == 2
                and isinstance(entry[1], dict) for entry in value):
            raise TypeError(f"{key} must be a list of (pattern, options dict) pairs; got "
                            f"{value!r}.")
        for pattern, options in value:
            if "lr" in options:
                _check_lr(options["lr"], f"{key} (lr of {pattern!r})")


def _active_seeded() -> dict:
    """The generators of the seeded calls running in this thread, by id(net)."""
    if not hasattr(_SEEDED, "nets"):
        _SEEDED.nets = {}
    return _SEEDED.nets


# Rows of the dataset get_iterator is building a training iterator for (per thread: grid
# searches may fit nets in threads), read by get_params_for("iterator_train").
_ITERATING = threading.local()


def _single_row_tail(n_rows: int, batch_size) -> bool:
    """Whether batches of ``batch_size`` over ``n_rows`` rows end in a batch of one."""
    return (isinstance(batch_size, numbers.Integral) and 1 < batch_size < n_rows
            and n_rows % batch_size == 1)


def _is_dataloader(iterator) -> bool:
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


def _row_hashes(X) -> torch.Tensor:
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
    arrays = [(p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p))
              for p in parts]
    arrays = [np.ascontiguousarray(a.reshape(len(a), -1)) for a in arrays]
    hashes = []
    for i in range(len(arrays[0])):
        value = 0
        for a in arrays:
            value = zlib.crc32(a[i].tobytes(), value)
        hashes.append(value / 2 ** 32)
    return torch.tensor(hashes, dtype=torch.float64)
