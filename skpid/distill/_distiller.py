"""PIDDistiller: a skorch classifier trained by distillation from a frozen teacher.

The net is a template of skorch's documented steps (``initialize_*``, ``train_step`` →
``train_step_single`` → ``infer`` → ``get_loss``); what cuts across them lives in
callbacks (:class:`TeacherCheck`, :class:`PIDGate`, :class:`PIDMonitor`) and in small
modules: the parameters and their checks (``_params``), seeding (``_seeding``), data
casting (``_data``), non-finite diagnosis (``_nonfinite``), the epoch table
(``_printlog``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import clone
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.dataset import unpack_data
from skorch.history import History
from skorch.utils import TeeGenerator, to_tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .._arrays import to_numpy
from .._labels import fit_labels, format_labels, transform_labels
from .._validation import check_choice
from ._data import (EncodedTargets, cast_input, check_device, dataset_targets,
                    pool_features, row_hashes, single_row_tail)
from ._hooks import capture, check_captured, resolve_layers
from ._losses import DistillationLoss, NoDistillation, _eval, check_pair, kd_loss
from ._nonfinite import check_finite_input, report_nonfinite
from ._params import (METHOD_SETTINGS, OPTIMIZERS, READ_PER_FIT, check_lr_for,
                      check_params_given, check_settings, check_values, construct_optimizer,
                      keep_optimizer_params, layer_lists, method_class, set_plain)
from ._pid_gate import LOGITS, PIDGate
from ._printlog import DistillerPrintLog
from ._seeding import loader_generator, reseed_epoch, seeded
from ._state import (criterion_bundle, load, load_criterion_bundle, load_optimizer_bundle,
                     optimizer_bundle, restore_best_scores, save)
from ._teacher import FrozenTeacher
from ._teacher_check import TeacherCheck

# Loss terms recorded per batch and averaged per epoch in ``history`` (with a
# "train_"/"valid_" prefix): student cross-entropy, the distillation term the student
# minimises, RID's filter-head cross-entropy and filter distance, the logit-KD add-on.
_TERMS = ("ce", "distill", "filter_ce", "distance", "kd", "gate")


def softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax: the student's logits → class probabilities (``predict_proba``).

    A module-level function (not a lambda) so that the net pickles. Logits narrower
    than float32 (a bfloat16 or float16 student) give float32 probabilities: numpy,
    where skorch puts them, has no bfloat16.
    """
    if logits.is_floating_point() and logits.element_size() < 4:
        logits = logits.float()
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
        callbacks = dict(super()._default_callbacks)
        callbacks["valid_acc"] = EpochScoring(_encoded_accuracy, name="valid_acc",
                                              lower_is_better=False)
        callbacks["teacher_check"] = TeacherCheck()
        callbacks["pid_gate"] = PIDGate()
        callbacks["print_log"] = DistillerPrintLog()
        return list(callbacks.items())

    def _history_keys(self) -> list:
        """The epoch keys of ``history`` this fit can record, declared before the first
        epoch so that the printed table has a column for each from the start: the loss
        terms the method returns in either phase, and the keys of callbacks that declare
        theirs (:class:`PIDMonitor`, :class:`PIDGate`)."""
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
            check_params_given(self, kwargs)
        new_teacher = "teacher" in kwargs
        if new_teacher:
            set_plain(self, "teacher", kwargs.pop("teacher"))
        if isinstance(kwargs.get("method"), torch.nn.Module) and not initialized:
            # an initialized net has registered "method" as a component: skorch sets it
            set_plain(self, "method", kwargs.pop("method"))
        # skorch takes an optimizer class set on an initialized net for a component
        # parameter and fails ("Something went wrong"): set the class as the plain
        # parameter it is and rebuild the optimizers below.
        new_classes = ({k: kwargs.pop(k) for k in OPTIMIZERS if k in kwargs}
                       if initialized else {})
        for name, value in new_classes.items():
            setattr(self, name, value)
        if initialized:
            # skorch rebuilds a component for each prefixed parameter set on an
            # initialized net, and fails ("Something went wrong") for the prefixes that
            # name none: the DataLoaders' and the dataset's, read afresh by every fit.
            for key in [k for k in kwargs if k.partition("__")[0] in READ_PER_FIT]:
                setattr(self, key, kwargs.pop(key))
        super().set_params(**kwargs)
        if initialized:
            keep_optimizer_params(self, kwargs)
            for name in new_classes:  # only the optimizer given: the other keeps its state
                setattr(self, name + "_", self._optimizer_for(name))
            self._teacher_side_changed({*kwargs, *(["teacher"] if new_teacher else [])})
        if "pid_gate" in kwargs and not self.pid_gate:
            self.pid_gates_ = {}
        return self

    def _teacher_side_changed(self, names) -> None:
        """After ``set_params`` of ``names`` on an initialized net: rewrap the teacher for
        new layers (unknown paths fail here, not at the next fit)."""
        if names & {"teacher", "teacher_layers", "teacher_cache", "student_layers"}:
            self.teacher_ = self._frozen_teacher()
            resolve_layers(self._student(), self._layer_lists()[1], "student_layers")

    # ------------------------------------------------------------------ seeding
    def fit(self, X, y, **fit_params):
        """Initialize and train the net (skorch's ``fit``), seeded by ``random_state``."""
        with seeded(self):
            return super().fit(X, y, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train on ``X, y`` without re-initializing (skorch's ``partial_fit``), seeded
        by ``random_state``.

        As scikit-learn's ``partial_fit``: ``classes`` (all the classes, which one batch
        may not show) is taken on the first call, and later calls keep ``classes_``:
        their labels must be among them (and ``classes``, if given again, the same).
        """
        with seeded(self):
            if not self.initialized_:
                self.initialize()
            if classes is not None:
                self._set_classes(classes)
            return super().partial_fit(X, y, classes=classes, **fit_params)

    def initialize(self):
        """skorch's ``initialize`` (a new student, criteria and optimizers, seeded by
        ``random_state``); forgets the classes and measurements of an earlier fit."""
        with seeded(self):
            for name in ("classes_inferred_", "teacher_information_", "pid_gates_"):
                vars(self).pop(name, None)
            return super().initialize()

    def _set_classes(self, classes) -> None:
        classes = fit_labels(classes, "classes")
        known = vars(self).get("classes_inferred_")
        if known is not None and not (len(known) == len(classes)
                                      and np.array_equal(known, classes)):
            raise ValueError(f"classes: {format_labels(classes)} differ from the classes "
                             f"of the first partial_fit call, {format_labels(known)}.")
        self.classes_inferred_ = classes

    def get_iterator(self, dataset, training=False):
        """skorch's ``get_iterator``, with two changes.

        A training epoch whose last batch would hold a single row drops that batch (one
        row, a different one each epoch when shuffled): BatchNorm cannot normalise one
        row in training mode. Set ``iterator_train__drop_last`` yourself to decide
        otherwise. In a seeded call the DataLoaders get the call's own generator (unless
        ``iterator_*__generator`` is set), so that the batch order neither draws from nor
        depends on torch's global generator.
        """
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if training and "drop_last" not in kwargs and single_row_tail(
                len(dataset), kwargs["batch_size"]):
            kwargs["drop_last"] = True
        iterator = getattr(self, prefix)
        generator = loader_generator(self, prefix)
        if generator is not None and "generator" not in kwargs and _is_dataloader(iterator):
            kwargs["generator"] = generator
        return iterator(dataset, **kwargs)

    def effective_pid_weight(self) -> float:
        """``pid_weight``, with ``"auto"`` resolved to the method's recommended weight."""
        if isinstance(self.pid_weight, str):
            return float(self._method().recommended_weight)
        return float(self.pid_weight)

    def _layer_lists(self, params=None):
        """``teacher_layers`` and ``student_layers`` as lists."""
        return layer_lists(self, params)

    # ------------------------------------------------------------------ initialize hooks
    def initialize_module(self):
        """Validate the settings, build the student (skorch) and wrap the teacher."""
        check_settings(self)
        check_device(self.device)
        super().initialize_module()
        resolve_layers(self.module_, self._layer_lists()[1], "student_layers")  # fail early
        self.teacher_ = self._frozen_teacher()
        return self

    def _frozen_teacher(self) -> FrozenTeacher:
        return FrozenTeacher(self.teacher, self._layer_lists()[0], device=self._placement(),
                             cache=self.teacher_cache)

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
        cls = method_class(self.method)
        kwargs = self.get_params_for("method")
        # The constructor runs the same checks; here they name the parameters as the
        # user gave them (method__rounds, not rounds).
        cls.check_params(kwargs, prefix="method__")
        if isinstance(self.method, str):
            # the net-level settings are the source; method__* given too take precedence
            settings = {name: getattr(self, name)
                        for name in METHOD_SETTINGS.get(self.method, ())}
            method = cls(**{**settings, **kwargs})
        else:
            method = self.initialized_instance(self.method, kwargs)
        # Set inside skorch's criterion context, so skorch registers method_ as it does
        # any new criterion: set to train/eval with the net, moved to the device, saved
        # by save_params(f_method=...), and "method__*" parameters routed to it and
        # rebuilding it (constructor, set_params, grid searches).
        self.method_ = method.to(self._placement())
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
        placeholder parameter only (torch refuses an optimizer without parameters).
        """
        for name in OPTIMIZERS:
            setattr(self, name + "_", self._optimizer_for(name))
        return self

    def _optimizer_for(self, prefix: str):
        """A new ``optimizer`` (the student side) or ``filter_optimizer``. The filter
        optimizer without a class of its own is the student's: its class and its
        ``optimizer__*`` settings (``filter_optimizer__*`` take precedence)."""
        teacher_side = {id(p) for p in self._method().teacher_side_parameters()}
        filters = prefix == "filter_optimizer"
        named = [(name, p) for name, p in self.get_all_learnable_params()
                 if (id(p) in teacher_side) == filters]
        if not named:
            named = [("placeholder", torch.zeros(1, requires_grad=True))]
        args, kwargs = self.get_params_for_optimizer(prefix, named)
        cls = getattr(self, prefix)
        if filters and cls is None:
            # the student's optimizer settings (momentum, weight decay, ...); the learning
            # rate is the net's lr unless filter_optimizer__lr is set
            cls = self.optimizer
            inherited = {k: v for k, v in self.get_params_for("optimizer").items()
                         if k not in ("param_groups", "lr")}
            kwargs = {**inherited, **kwargs}
        return self._build_optimizer(prefix, cls, args, kwargs)

    def _build_optimizer(self, prefix, cls, args, kwargs):
        lr_name = f"{prefix}__lr" if f"{prefix}__lr" in vars(self) else "lr"
        for group in args[0]:
            check_lr_for(group.get("lr", kwargs["lr"]), group["params"],
                         lr_name if "lr" not in group else f"{prefix}__param_groups")
        return construct_optimizer(prefix, cls, args, kwargs)

    # ------------------------------------------------------------------ save / load
    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, use_safetensors=False, **kwargs):
        """skorch's ``save_params``; ``f_criterion`` and ``f_optimizer`` also hold what a
        distillation adds (the distillation criterion with its parts and schedule, the
        filter optimizer, the gates, the teacher's information), so that skorch's
        ``Checkpoint`` + ``LoadInitState`` resume exactly. See the user guide, "Saving,
        resuming and continuing training"."""
        if use_safetensors and (f_criterion is not None or f_optimizer is not None):
            raise ValueError("use_safetensors: f_criterion and f_optimizer of a "
                             "PIDDistiller hold optimizer states and training state, "
                             "which safetensors cannot store; save them with "
                             "use_safetensors=False.")
        others = {k: v for k, v in dict(f_params=f_params, f_history=f_history,
                                        **kwargs).items() if v is not None}
        if others or (f_criterion is None and f_optimizer is None):
            super().save_params(use_safetensors=use_safetensors, **others)
        if f_criterion is not None or f_optimizer is not None:
            self.check_is_fitted(["criterion_", "optimizer_"])
        if f_criterion is not None:
            save(criterion_bundle(self), f_criterion)
        if f_optimizer is not None:
            save(optimizer_bundle(self), f_optimizer)

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, checkpoint=None, use_safetensors=False, **kwargs):
        """skorch's ``load_params``, reading the ``f_criterion`` and ``f_optimizer`` that
        :meth:`save_params` writes (plain skorch files too). The distillation parts are
        built from the saved shapes where the net has not built them yet, so that
        ``initialize()`` + ``load_params(...)`` + ``partial_fit`` continues the saved
        run."""
        files = {}
        if checkpoint is not None:
            if not self.initialized_:
                self.initialize()
            if f_history is None and checkpoint.f_history is not None:
                # as skorch: the history first, which names the checkpoint's files
                self.history = History.from_file(checkpoint.f_history_)
            files.update(checkpoint.get_formatted_files(self))
        files.update({k: v for k, v in dict(f_params=f_params, f_optimizer=f_optimizer,
                                            f_criterion=f_criterion, f_history=f_history,
                                            **kwargs).items() if v is not None})
        f_criterion, f_optimizer = files.pop("f_criterion", None), files.pop("f_optimizer", None)
        files = {k: v for k, v in files.items() if v is not None}
        if files:
            super().load_params(use_safetensors=use_safetensors, **files)
        if "f_history" in files:
            restore_best_scores(self)
        if f_criterion is not None:
            load_criterion_bundle(self, load(f_criterion, self))
        if f_optimizer is not None:
            parts_loaded = f_criterion is not None or "f_method" in files
            load_optimizer_bundle(self, load(f_optimizer, self), parts_loaded)

    # ------------------------------------------------------------------ data
    def check_data(self, X, y=None):
        """The classes: inferred from ``y`` (or from the labels of a Dataset ``X``) on a
        new fit, kept by a continuing one (``partial_fit``, warm start), whose labels
        must be among them; clear errors for labels that cannot be classes (NaN, types
        that cannot be sorted)."""
        if y is None and isinstance(X, TorchDataset):
            y = dataset_targets(X)
        if y is None or isinstance(y, TorchDataset):
            return super().check_data(X, y)
        classes = fit_labels(y, "y")  # the package's one label check: same errors everywhere
        known = vars(self).get("classes_inferred_")
        if self.classes is None and known is not None:
            transform_labels(y, known, "y")  # an unseen label is an error
        elif self.classes is None:
            self.classes_inferred_ = classes

    def get_dataset(self, X, y=None):
        """skorch's dataset, with the labels encoded as indices into ``classes_`` (also
        those a Dataset ``X`` holds) and a real-valued ``X`` (numpy of any real dtype,
        pandas, torch tensors) cast to the student's parameter dtype, as scikit-learn
        estimators accept any real input."""
        if y is None and isinstance(X, TorchDataset) and not isinstance(X, EncodedTargets):
            return EncodedTargets(X, self.classes_) if self._fitted_classes() else X
        if y is not None and not isinstance(y, TorchDataset):
            y = transform_labels(y, self.classes_, "y")
        return super().get_dataset(cast_input(X, self._input_dtype()), y)

    def _fitted_classes(self) -> bool:
        return self.classes is not None or "classes_inferred_" in vars(self)

    def _input_dtype(self) -> torch.dtype:
        module = getattr(self, "module_", None)
        params = next(module.parameters(), None) if module is not None else None
        return params.dtype if params is not None else torch.float32

    def predict(self, X):
        """Class labels (elements of ``classes_``) of the most probable class."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # ------------------------------------------------------------------ representations
    @torch.no_grad()
    def representations(self, X, pair=0, *, side="both", max_features=None):
        """Teacher and student representations of ``X`` at layer pairs.

        The one way the net's measurements (``teacher_check``, ``pid_gate``,
        :class:`PIDMonitor`) and users run the networks over data: every row of ``X``
        in order, in eval mode, on every process (never sharded across processes).

        Parameters
        ----------
        X : input data (anything skorch accepts, including a Dataset)
        pair : int, "logits", None, or a list of them, default=0
            Index into ``teacher_layers`` / ``student_layers``; ``"logits"`` (or None)
            the two networks' outputs.
        side : {"both", "teacher", "student"}, default="both"
            Which network(s) to run; the other side of the result is None.
        max_features : int or None, default=None
            Average-pool feature maps (``(N, C, H, W)`` or ``(N, C, L)``) with more
            values per row to the finest grid with at most this many (at least one
            position per channel), batch by batch: bounded memory for wide maps.

        Returns
        -------
        teacher, student : ndarray of shape (n_samples, ...) or None
            Activations (the logits where the layer is ``None``); a list of such pairs
            where ``pair`` is a list.
        """
        self.check_is_fitted()
        pairs = [self._check_pair(p) for p in
                 (pair if isinstance(pair, (list, tuple)) else [pair])]
        check_choice(side, "side", ("both", "teacher", "student"))
        teacher, student = side in ("both", "teacher"), side in ("both", "student")
        dataset = X if isinstance(X, TorchDataset) else self.get_dataset(X)
        out = [([], []) for _ in pairs]
        for batch in self._measurement_iterator(dataset):
            xb, _ = unpack_data(batch)
            _, t_reps, _, s_reps = self._run_batch(xb, pairs, teacher, student)
            for k, (t_out, s_out) in enumerate(out):
                if teacher:
                    t_out.append(to_numpy(pool_features(t_reps[k], max_features)))
                if student:
                    s_out.append(to_numpy(pool_features(s_reps[k], max_features)))
        result = [(np.concatenate(t) if teacher else None,
                   np.concatenate(s) if student else None) for t, s in out]
        return result if isinstance(pair, (list, tuple)) else result[0]

    def _check_pair(self, pair):
        """A layer-pair index, or None for the logits; a clear error otherwise."""
        if pair is None or (isinstance(pair, str) and pair == "logits"):
            return None
        n_pairs = len(self._layer_lists()[0])
        if (not isinstance(pair, numbers.Integral) or isinstance(pair, bool)
                or not 0 <= pair < n_pairs):
            raise ValueError(f"pair must be 'logits' or an index into teacher_layers / "
                             f"student_layers (0 to {n_pairs - 1}); got {pair!r}.")
        return int(pair)

    def _measurement_iterator(self, dataset):
        """Batches over ``dataset`` in order, on every process (not prepared by an
        accelerator), drawing from no global generator."""
        kwargs = self.get_params_for("iterator_valid")
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if _is_dataloader(self.iterator_valid):
            kwargs.setdefault("generator", torch.Generator())
        return self.iterator_valid(dataset, **kwargs)

    @torch.no_grad()
    def _run_batch(self, xb, pairs, teacher=True, student=True):
        """``(teacher logits, [teacher rep per pair], student logits, [student rep per
        pair])`` of one batch, the student in eval mode (its BatchNorm statistics do not
        move); ``pairs`` hold layer-pair indices or None (the logits)."""
        t_logits = t_reps = s_logits = s_reps = None
        if teacher:
            t_logits, t_feats = self.teacher_(xb)
            t_reps = [t_logits if p is None else t_feats[p] for p in pairs]
        if student:
            paths = self._layer_lists()[1]
            layers = resolve_layers(self._student(),
                                    [None if p is None else paths[p] for p in pairs],
                                    "student_layers")
            module = self._student()
            with _eval(module), capture(layers) as slots:
                x = to_tensor(xb, device=self._placement())
                s_logits = module(**x) if isinstance(x, Mapping) else module(x)
            check_captured(slots, [None if p is None else paths[p] for p in pairs],
                           "student_layers", "student")
            while isinstance(s_logits, (tuple, list)):
                s_logits = s_logits[0]
            s_reps = [s_logits if slot is None else slot for slot in slots]
        return t_logits, t_reps, s_logits, s_reps

    # ------------------------------------------------------------------ training hooks
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check the data, probe representation shapes on a first batch, build the
        distillation parts and (re)initialize the optimizers, before any training step."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # fit has checked them in initialize; partial_fit and warm starts have not
        check_values(self)
        check_finite_input(X)
        self.check_data(X, y)
        classes = self.classes_
        teacher_classes = self.teacher_.classes
        if teacher_classes is not None and (
                len(teacher_classes) != len(classes)
                or not np.array_equal(np.sort(teacher_classes), classes)):
            raise ValueError(
                f"teacher: it predicts classes {np.asarray(teacher_classes).tolist()} but y "
                f"has classes {classes.tolist()}.")
        t_logits, t_feats, s_logits, s_feats = self._probe(X, y)
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
            if any(True for _ in method.parameters()):
                # the optimizers now take the new parts (registered at initialize
                # already); without new parameters they keep their state
                self.initialize_optimizer()
        self._check_batch_size(X, y)
        if not len(self.history):  # a new fit (the teacher check, a callback, measures)
            self.teacher_information_ = {}

    def _check_batch_size(self, X, y) -> None:
        """BatchNorm in the distillation parts cannot normalise one row in training."""
        batch_size = self.get_params_for("iterator_train").get("batch_size",
                                                                self.batch_size)
        has_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                            for m in self._method().modules())
        if has_batchnorm and batch_size == 1:
            raise ValueError(
                f"batch_size=1: the distillation parts of method={self.method!r} "
                "normalise over the batch (BatchNorm) and need training batches of at "
                "least 2 rows.")

    def _probe(self, X, y):
        """The networks' outputs on a first batch (the student's paired layers only for
        feature methods), for the shapes the distillation parts are built for."""
        batch = next(iter(self._measurement_iterator(self.get_dataset(X, y))))
        xb, _ = unpack_data(batch)
        n_pairs = len(self._layer_lists()[0])
        features = self._method().uses_features
        try:
            t_logits, t_feats, s_logits, s_feats = self._run_batch(
                xb, list(range(n_pairs)), student=features)
            if not features:
                s_logits = self._run_batch(xb, [None], teacher=False)[2]
                s_feats = [s_logits] * n_pairs
        except RuntimeError as exc:
            hint = _dtype_mismatch(xb, self._student(), self.teacher_)
            if hint is None:
                raise
            raise TypeError(f"{hint} ({exc})") from exc
        return t_logits, t_feats, s_logits, s_feats

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Drop the teacher's measured codes of this call (they hold for its data)."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        vars(self).pop("teacher_codes_", None)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Reseed for this epoch; RID's schedule: the optimizer updates of an epoch."""
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)
        reseed_epoch(self, len(self.history))
        it_params = self.get_params_for("iterator_train")
        batch_size = it_params.get("batch_size", self.batch_size)
        n = len(dataset_train)
        drop_last = it_params.get("drop_last", single_row_tail(n, batch_size))
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
        method = self._method()
        self.phase_ = method.phase(getattr(self, "total_steps_", 1))
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
            method.count_update(self.phase_)
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

    def _student_layer_modules(self):
        if not self._method().uses_features:
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

    def _method_terms(self, phase, *args, **kwargs) -> dict:
        """The distillation criterion's terms; a clear error for a criterion whose
        student-phase terms lack ``"distill"``, the term the student minimises (it
        would otherwise train as ``method="none"``, silently)."""
        terms = self.method_(*args, phase=phase, **kwargs)
        if phase == "student" and (not isinstance(terms, Mapping) or "distill" not in terms):
            got = sorted(terms) if isinstance(terms, Mapping) else type(terms).__name__
            raise TypeError(
                f"method: {type(self._method()).__name__}.forward must return a dict of "
                f"named loss terms with \"distill\", the term pid_weight weights; got "
                f"{got}.")
        return terms

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
                    row_hash = row_hashes(X).to(y_pred.device)
                weights = (self._pair_weights(y_pred.device)
                           if self.pid_gate and method.uses_features else None)
                per_pair = weights is not None and method.weights_pairs
                terms.update(self._method_terms(phase, y_pred, t_logits, s_feats, t_feats,
                                                y_true, row_hash=row_hash,
                                                **({"pair_weights": weights} if per_pair
                                                   else {})))
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
            report_nonfinite(self, values, total, training, phase, X, y_pred, s_feats,
                             teacher_out)
        return loss


def _unwrap(module):
    # DistributedDataParallel and DataParallel hold the wrapped module in ``.module``.
    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(module, parallel):
        module = module.module
    return module


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.is_floating_point() else tensor


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
