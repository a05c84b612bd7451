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
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import clone
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.utils import TeeGenerator, to_tensor
from torch.utils.data import Dataset as TorchDataset

from .._labels import fit_labels, format_labels, transform_labels
from ._budget import StudentEarlyStopping
from ._callbacks import LossScoring
from ._data import (EncodedTargets, batches_per_epoch, cast_input, check_classes,
                    check_device, dataset_targets, row_hashes, short_tail)
from ._hooks import capture, resolve_layers
from ._losses import DistillationLoss, NoDistillation, _eval, check_pair, kd_loss
from ._nonfinite import check_finite_input, report_nonfinite
from ._params import (METHOD_SETTINGS, OPTIMIZERS, build_optimizer, check_batch_size,
                      check_settings, check_values, layer_lists, method_class, set_params)
from ._pid_gate import LOGITS, PIDGate
from ._printlog import DistillerPrintLog
from ._representations import (as_float32, collect, first_batch, is_dataloader,
                               prepare_criterion, probe, unwrap)
from ._seeding import loader_generator, reseed_epoch, seeded
from ._state import load_params, save_params
from ._teacher import FrozenTeacher
from ._teacher_check import TeacherCheck, distilled_layers

# Batch keys skorch records and averages itself.
_SKORCH_KEYS = {"train_loss", "valid_loss", "train_batch_size", "valid_batch_size"}


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
    ``distill`` is the term of ``method``. Two-phase methods (RID, TED) alternate a
    teacher-filter phase and a student phase inside skorch's ``train_step``, each phase
    stepping its own optimizer (``optimizer_`` for the student side,
    ``filter_optimizer_`` for RID's teacher filters and heads).

    Parameters
    ----------
    module : nn.Module class or instance
        The student; its forward must return class logits. ``module__*`` parameters are
        routed to it as in skorch.
    teacher : nn.Module, fitted skorch net or fitted scikit-learn classifier
        Never trained: in no optimizer, always in eval mode, run under ``no_grad`` and
        moved to ``device`` (in place; shared, not copied, by ``clone`` and so by
        ``GridSearchCV``). A scikit-learn teacher (e.g. a random forest) supports logit
        distillation only; its logits are ``log predict_proba`` (or
        ``decision_function``).
    method : str, DistillationLoss instance or subclass, default="kd"
        The distillation term: ``"none"``, ``"kd"``, ``"fitnet"``, ``"vid"``,
        ``"rid"``, ``"ted"``, ``"dkd"``, ``"dist"``, ``"nd"``, ``"bdkd"``, ``"sinkd"``,
        ``"crd"`` (:data:`~skpid.distill.METHODS`) or a criterion.
        Net-level settings (``temperature``; ``rounds``, ``teacher_ratio``,
        ``variance_penalty``) reach a method given by name, ``method__*`` any criterion
        (and take precedence). The default, Hinton's KD on the logits, beat students
        trained alone on 200 and 2,000 rows they were not tuned for; on 20,000 it
        gained nothing (a width-4 CNN lost 1.6 points; user guide, "Training a student").
    pid_weight : float or "auto", default="auto"
        α1, the weight of the distillation term (≥ 0); ``"auto"`` is the criterion's
        ``recommended_weight`` (10 for RID and TED, 4 for SinKD, 0.8 for CRD, 1 for the
        others).
    ce_weight : float, default=1.0
        α0, the weight of the student's cross-entropy (≥ 0).
    kd_weight : float, default=0.0
        Weight of an added KD term on the logits, beside a feature method (≥ 0).
    teacher_layers, student_layers : list of (str or None), or None, default=None
        Module paths (``named_modules()``, e.g. ``"features.3"``) of the representations
        to pair, in order; None (or a None entry) is the logits. Feature methods
        (FitNets, VID, RID, TED) distill these pairs.
    temperature : float, default=4.0
        KD's temperature (``method="kd"`` and ``kd_weight``).
    rounds : int or None, default=None
        RID's schedule: None, rounds of ``method__round_epochs`` (10) epochs however
        long training runs; R, R rounds over ``max_epochs`` (the paper's layout).
    teacher_ratio : float, default=0.25
        RID's ρ in (0, 1): the share of each round spent training the teacher filters.
    variance_penalty : {"fixed", "log", "square"}, default="fixed"
        RID's variances: fixed, or learned with the Gaussian NLL (``"log"``) or the
        research code's σ⁴ (``"square"``); see :class:`~skpid.distill.RIDLoss`.
    teacher_cache : "auto" or bool, default="auto"
        Compute each row's teacher outputs once and keep them (at most 1 GiB). "auto":
        on array inputs (a torch Dataset may augment its rows at random), for a
        scikit-learn teacher or a torch teacher above 5e4 multiply-adds a row (for a
        smaller one a lookup gains little).
    filter_optimizer : torch optimizer class or None, default=None
        Optimizer of RID's teacher filters and heads; None: the student's, with its
        ``optimizer__*`` settings. ``filter_optimizer__*`` configure it (``lr`` defaults
        to ``lr``) through the constructor, ``set_params`` and grid searches.
    random_state : int, numpy random generator or None, default=None
        Seeds the initial weights, the batch order and dropout of ``initialize``,
        ``fit`` and ``partial_fit``, every epoch by ``(random_state, epoch)`` (a resumed
        or continued run draws what the uninterrupted one draws), restoring torch's
        global generators afterwards; seeded fits in threads give what each gives alone.
    on_nonfinite : {"raise", "warn"}, default="raise"
        A NaN or infinite loss term stops training with a ``FloatingPointError`` naming
        the epoch, the batch, the term and the cause; ``"warn"`` warns and trains on.
    teacher_check : {"warn", "raise", "ignore"}, default="warn"
        Before training, test each distilled teacher representation's task information
        I(Y;T) against zero (:class:`~skpid.distill.TeacherCheck`, the default callback
        ``"teacher_check"``). ``"warn"``: a representation without measurable task
        information (a *nuisance* teacher) gets a
        :class:`~skpid.exceptions.NuisanceTeacherWarning` and is not distilled;
        ``"raise"``: a ``ValueError``; ``"ignore"``: no check.
    pid_gate : bool, default=False
        Scale each pair's distillation term (and the logit terms) by a gate measured
        with PID every ``pid_gate_every`` epochs (:class:`~skpid.distill.PIDGate`, the
        default callback ``"pid_gate"``): 0 for a nuisance teacher, closing as the
        student comes to hold what the teacher layer knows about Y.
    pid_gate_every : int, default=5
        Epochs between gate measurements (≥ 1).
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        The student's classification loss.
    predict_nonlinearity : callable, default=softmax_rows
        Maps logits to probabilities in ``predict_proba``.
    optimizer : torch optimizer class, default=torch.optim.Adam
        The student side's optimizer (skorch's default is SGD).
    lr : float, default=1e-2
        Adam's learning rate.
    max_epochs : int, default=200
        At most this many epochs; the default callback ``"early_stopping"``
        (:class:`~skpid.distill.StudentEarlyStopping`) lowers the learning rate when the
        student's validation accuracy stops improving and stops after 20 epochs (or
        5,000 updates) and 300 updates without improvement, restoring its best epoch
        (scikit-learn's ``MLPClassifier``: ``max_iter=200``).
    batch_size : int, default=64
        Rows per batch (skorch's default is 128).
    **kwargs
        Everything else skorch's :class:`~skorch.NeuralNetClassifier` accepts
        (``callbacks``, ``device``, ``train_split``, ``warm_start``, ``iterator_*``,
        …). Training batches are shuffled (``iterator_train__shuffle=True``).

    Attributes
    ----------
    teacher_ : FrozenTeacher
        The wrapped teacher.
    method_ : DistillationLoss
        The distillation criterion with its learnable parts (built from the shapes
        probed on the first batch of ``fit``, or from saved shapes by ``load_params``).
    filter_optimizer_ : torch optimizer
        The optimizer of RID's teacher filters and heads.
    teacher_information_ : dict
        The teacher check's bias-corrected I(Y;T) in bits of each distilled teacher
        representation (``"logits"`` for None).
    nuisance_layers_ : set
        The representations the check found without task information (not distilled
        with ``teacher_check="warn"``).
    pid_gates_ : dict
        With ``pid_gate=True``: the latest measurement of each gate (``"gate_0"``, …,
        ``"gate_kd"``), a ``PairGate`` (``gate``, ``share``, ``unique_teacher``,
        ``mi_teacher`` in bits, ``p_value``).
    classes_ : ndarray
        Class labels (any sortable labels: strings work).

    Notes
    -----
    The defaults differ from skorch's so that a user who changes nothing gets a student
    that trains well on their model and data size (the user guide's "Training a
    student": the table of defaults and the measurements behind them; the input types
    accepted; saving, resuming and continuing training). ``valid_loss`` is the
    student's cross-entropy on the validation split, the distillation terms recorded
    apart: what skorch's ``Checkpoint`` and ``EarlyStopping`` monitor by default, the
    same for every method and phase. Every setting is checked where it arrives
    (constructor, ``method__*``, ``set_params``, grid searches), with a ``TypeError``
    or ``ValueError`` naming it.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from skpid import PIDDistiller
    >>> X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> teacher = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> student = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> net = PIDDistiller(student, teacher, max_epochs=2, batch_size=16,
    ...                    train_split=None, verbose=0).fit(X, y)
    >>> net.predict_proba(X[:2]).sum(axis=1).round(5)
    array([1., 1.], dtype=float32)
    >>> [key in net.history[-1] for key in ("train_ce", "train_distill", "train_loss")]
    [True, True, True]
    """

    def __init__(self, module, teacher=None, *, method="kd", pid_weight="auto",
                 ce_weight=1.0, kd_weight=0.0, teacher_layers=None, student_layers=None,
                 temperature=4.0, rounds=None, teacher_ratio=0.25,
                 variance_penalty="fixed", teacher_cache="auto", filter_optimizer=None,
                 random_state=None, on_nonfinite="raise", teacher_check="warn", pid_gate=False,
                 pid_gate_every=5, criterion=torch.nn.CrossEntropyLoss,
                 predict_nonlinearity=softmax_rows, optimizer=torch.optim.Adam, lr=1e-2,
                 max_epochs=200, batch_size=64, **kwargs):
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
        callbacks["train_loss"] = LossScoring(name="train_loss", on_train=True)
        callbacks["valid_loss"] = LossScoring(name="valid_loss")
        callbacks["valid_acc"] = EpochScoring(_encoded_accuracy, name="valid_acc",
                                              lower_is_better=False)
        callbacks["teacher_check"] = TeacherCheck()
        callbacks["pid_gate"] = PIDGate()
        callbacks["early_stopping"] = StudentEarlyStopping()
        callbacks["print_log"] = DistillerPrintLog()
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
        return set_params(self, super().set_params, kwargs)

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
            for name in ("classes_inferred_", "teacher_information_", "nuisance_layers_",
                         "pid_gates_"):
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
        """skorch's ``get_iterator``; a training epoch whose last batch would hold a
        single row drops it (BatchNorm cannot normalise one row; set
        ``iterator_train__drop_last`` to decide otherwise), and in a seeded call the
        DataLoaders get the call's own generator (unless ``iterator_*__generator`` is
        set)."""
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if training and "drop_last" not in kwargs and short_tail(
                len(dataset), kwargs["batch_size"], self._min_batch_size()):
            kwargs["drop_last"] = True
        iterator = getattr(self, prefix)
        generator = loader_generator(self, prefix)
        if generator is not None and "generator" not in kwargs and is_dataloader(iterator):
            kwargs["generator"] = generator
        return iterator(dataset, **kwargs)

    def _min_batch_size(self) -> int:
        """The smallest training batch: 2 (BatchNorm), or a criterion's minimum."""
        method = getattr(self, "method_", None)
        return max(2, getattr(unwrap(method), "min_batch_size", 2) if method else 2)

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
        # "auto" decides per fit, from the input (on_train_begin)
        return FrozenTeacher(self.teacher, self._layer_lists()[0], device=self._placement(),
                             cache=self.teacher_cache is True)

    def _placement(self):
        """Device of the teacher and of the distillation parts: ``device``."""
        return self.device

    def _method(self) -> DistillationLoss:
        """The distillation criterion, also where a data-parallel wrapper holds it."""
        return unwrap(self.method_)

    def _student(self) -> torch.nn.Module:
        """The student module, also where a data-parallel wrapper holds it."""
        return unwrap(self.module_)

    def initialize_criterion(self):
        """The student's criterion (skorch) plus the distillation criterion ``method_``."""
        super().initialize_criterion()
        # set_params(method=..., method__...) on an initialized net comes straight here
        cls = method_class(self.method)
        kwargs = self.get_params_for("method")
        cls.check_params(kwargs, prefix="method__")  # errors name method__rounds
        if isinstance(self.method, str):
            # the net-level settings are the source; method__* given too take precedence
            settings = {name: getattr(self, name)
                        for name in METHOD_SETTINGS.get(self.method, ())}
            method = cls(**{**settings, **kwargs})
        else:
            method = self.initialized_instance(self.method, kwargs)
        # set inside skorch's criterion context: skorch registers method_ as any criterion
        # (train/eval, device, f_method, method__* routing in constructor and set_params)
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
        filters and heads, both built from ``initialize`` on so that skorch registers
        them and routes ``filter_optimizer__*`` as it routes ``optimizer__*``. The parts
        built on the first batch of ``fit`` call this again; until then (and for
        methods without filters) the filter optimizer holds a placeholder parameter."""
        for name in OPTIMIZERS:
            setattr(self, name + "_", build_optimizer(self, name))
        return self

    # ------------------------------------------------------------------ save / load
    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, use_safetensors=False, **kwargs):
        """skorch's ``save_params``; ``f_criterion`` and ``f_optimizer`` also hold what a
        distillation adds (the distillation criterion with its parts and schedule, the
        filter optimizer, the gates, the teacher's information), so that skorch's
        ``Checkpoint`` + ``LoadInitState`` resume exactly. See the user guide, "Saving,
        resuming and continuing training"."""
        save_params(self, super().save_params, f_params=f_params, f_optimizer=f_optimizer,
                    f_criterion=f_criterion, f_history=f_history,
                    use_safetensors=use_safetensors, **kwargs)

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, checkpoint=None, use_safetensors=False, **kwargs):
        """skorch's ``load_params``, reading the ``f_criterion`` and ``f_optimizer`` that
        :meth:`save_params` writes (plain skorch files too). The distillation parts are
        built from the saved shapes where the net has not built them yet, so that
        ``initialize()`` + ``load_params(...)`` + ``partial_fit`` continues the saved
        run."""
        load_params(self, super().load_params, f_params=f_params, f_optimizer=f_optimizer,
                    f_criterion=f_criterion, f_history=f_history, checkpoint=checkpoint,
                    use_safetensors=use_safetensors, **kwargs)

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
        return collect(self, X, pair, side, max_features)

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
        t_logits, t_feats, s_logits, s_feats = probe(self, X, y)
        if self.teacher_cache == "auto":
            # fixed rows (a Dataset may augment its rows at random: every sample a new
            # row) and a teacher whose forward costs more than a lookup
            self.teacher_.cache = (not isinstance(X, TorchDataset)
                                   and self.teacher_.worth_caching(first_batch(self, X, y)))
        check_classes(classes, self.teacher_.classes, t_logits, s_logits)
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
        check_batch_size(self)
        if not len(self.history):  # a new fit (the teacher check, a callback, measures)
            self.teacher_information_, self.nuisance_layers_ = {}, set()
        prepare_criterion(self, method, X, y)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Drop what holds for this call's data: the teacher's codes, the row index."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        for name in ("teacher_codes_", "row_index_"):
            vars(self).pop(name, None)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Reseed for this epoch; RID's schedule: the optimizer updates of an epoch."""
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)
        reseed_epoch(self, len(self.history))
        params = self.get_params_for("iterator_train")
        self.steps_per_epoch_ = self._updates_per_epoch(batches_per_epoch(
            len(dataset_train), params.get("batch_size", self.batch_size),
            params.get("drop_last"), self._min_batch_size()))
        method = self._method()
        if getattr(method, "two_phase", False) and not self.history[:-1]:
            length = method.round_length(self.steps_per_epoch_, self.max_epochs)
            if length * method.teacher_ratio < 1 or length * (1 - method.teacher_ratio) < 1:
                warnings.warn(
                    f"RID schedule: rounds of {length:.3g} optimizer steps; each round "
                    "needs at least one teacher and one student step. Lengthen the "
                    "rounds (method__round_epochs, or fewer rounds), or use more "
                    "batches.", UserWarning)

    def _gate(self, name: str, layer: str) -> float:
        """The weight of one distilled teacher representation (``layer``): 0 where the
        teacher check found it without task information (``teacher_check="warn"``),
        else ``pid_gate``'s gate ``name`` (1 without the gate)."""
        if layer in getattr(self, "nuisance_layers_", ()):
            return 0.0
        gate = getattr(self, "pid_gates_", {}).get(name) if self.pid_gate else None
        return 1.0 if gate is None else gate.gate

    def _gated(self) -> bool:
        """Whether some distilled term is weighted (``pid_gate``, or a nuisance layer)."""
        return self.pid_gate or bool(getattr(self, "nuisance_layers_", ()))

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Average the per-batch loss terms into epoch columns of ``history``."""
        super().on_epoch_end(net, dataset_train=dataset_train,
                             dataset_valid=dataset_valid, **kwargs)
        batches = self.history[-1, "batches"]
        # every term a criterion records per batch (skorch averages the losses itself)
        keys = {key for b in batches for key in b
                if key.startswith(("train_", "valid_")) and key not in _SKORCH_KEYS}
        for key in sorted(keys):
            prefix = key.partition("_")[0]
            rows = [(b[key], b.get(f"{prefix}_batch_size", 1)) for b in batches if key in b]
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
        self.phase_ = method.phase(getattr(self, "steps_per_epoch_", 1), self.max_epochs)
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
        """The weight of each layer pair (:meth:`_gate`), for the criterion's terms."""
        return torch.tensor([self._gate(f"gate_{k}", layer or "logits")
                             for k, layer in enumerate(self._layer_lists()[0])],
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
        ce = self.criterion_(as_float32(y_pred), y_true)
        terms = {"ce": ce}
        method = self._method()
        # "student_ce": RID's concurrent student step in a teacher phase (no distance);
        # a one-phase method whose every representation is a nuisance distills nothing
        nuisance = getattr(self, "nuisance_layers_", set())
        idle = (bool(nuisance) and not method.two_phase
                and set(distilled_layers(self)) <= nuisance)
        needs_method = not (isinstance(method, NoDistillation) or phase == "student_ce"
                            or idle)
        needs_teacher = (self.kd_weight > 0 and "logits" not in nuisance) or needs_method
        teacher_out = None
        if needs_teacher:
            t_logits, t_feats = teacher_out = self.teacher_(X)
            # autocast gives half-precision outputs: the terms use float32 copies
            t_logits, t_feats = as_float32(t_logits), [as_float32(f) for f in t_feats]
            s_feats = [as_float32(f) for f in s_feats]
            if needs_method:
                row_hash = None
                if phase == "teacher" and getattr(method, "needs_row_hash", False):
                    row_hash = row_hashes(X).to(y_pred.device)
                weights = (self._pair_weights(y_pred.device)
                           if self._gated() and method.uses_features else None)
                per_pair = weights is not None and method.weights_pairs
                if training and getattr(method, "needs_row_index", False):
                    extra = {"index": self.row_index_(X).to(y_pred.device)}
                else:
                    extra = {}
                if per_pair:
                    extra["pair_weights"] = weights
                if self._gated() and method.uses_features and method.distills_logits:
                    extra["logit_weight"] = self._gate(LOGITS, "logits")
                terms.update(self._method_terms(
                    phase, y_pred, t_logits, s_feats, t_feats, y_true, row_hash=row_hash,
                    epoch=len(self.history), training=training, **extra))
                if self._gated() and "distill" in terms and not per_pair:
                    # logit methods: the logits' gate; a criterion without per-pair
                    # weights: the mean gate of its pairs
                    terms["distill"] = terms["distill"] * (
                        self._gate(LOGITS, "logits") if weights is None else weights.mean())
            if self.kd_weight > 0 and phase != "teacher":
                terms["kd"] = (kd_loss(as_float32(y_pred), t_logits, self.temperature)
                               * self._gate(LOGITS, "logits"))
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
        # Validation scores the student as a classifier: valid_loss, which early
        # stopping, checkpoints and "best" markers monitor, is its cross-entropy (the
        # distillation terms are recorded apart, as valid_distill, ...)
        return loss if training else ce
