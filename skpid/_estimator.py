"""The scikit-learn face: ``PIDEstimator``, ``score_representations``, ``score_layers``."""

import warnings
from contextlib import contextmanager
from functools import partial

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from ._discretize import (KMeansDiscretizer, PassthroughDiscretizer, QuantileDiscretizer,
                          RowScaler, flatten_samples, tensor_to_numpy)
from ._labels import (check_label_array, encode_labels, format_labels, is_continuous,
                      label_kind, transform_labels)
from ._pid._gaussian import gaussian_noise_floor, gaussian_pid
from ._pid._result import PIDResult
from ._validation import MEASURES, check_base, check_choice, check_int, check_real
from ._sampling import (BIAS_CORRECTIONS, QUANTITIES, PIDEstimate, codes_pid, compact_codes,
                        draw_seeds, estimate_pid)

DISCRETIZERS = ("kmeans", "quantile", "passthrough")
SCORINGS = QUANTITIES + tuple(f"neg_{name}" for name in QUANTITIES)
# Ridge on the correlation matrix of the Gaussian measure: keeps Cholesky factors of
# nearly collinear projections finite without moving well-conditioned answers.
GAUSSIAN_RIDGE = 1e-9
# Above this mean estimate of I(Y;T,S) from independent data (bits), the Gaussian
# measure warns that its plug-in values are dominated by sampling bias (unless the
# permutation correction is on): e.g. 5 + 5 components and 10 classes need about
# 1,300 samples to stay below it.
GAUSSIAN_NOISE_WARNING_BITS = 0.05


def fit_seeds(random_state) -> tuple:
    """The seeds of a fit: ``(teacher block, student block, surrogates)``.

    :func:`~skpid.score_chunks` seeds its discretizers with the first two, so that it
    gives the codes of :func:`score_representations` when its sample is every row.
    """
    return tuple(draw_seeds(random_state, 3))


def _columns(X, cols):
    """``X[:, cols]``, as a view when the columns are a contiguous range (no copy)."""
    if len(cols) and cols[-1] - cols[0] == len(cols) - 1 and np.all(np.diff(cols) == 1):
        return X[:, cols[0]:cols[-1] + 1]
    return X[:, cols]


@contextmanager
def named_warnings(label: str):
    """Re-issue the warnings raised inside, prefixed with ``label`` (e.g. "teacher block"),
    so that a user scoring two representations can tell which one a warning is about."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        warnings.warn_explicit(f"{label}: {w.message}", w.category, w.filename, w.lineno)


def _as_codes(codes) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != 1 or codes.dtype.kind not in "iu":
        raise ValueError("discretizer must return integer codes of shape (n_samples, 1); "
                         f"got dtype {codes.dtype} and shape {codes.shape}.")
    return codes[:, 0].astype(np.int64)


def _target_matrix(y_codes, n_classes, continuous_y):
    """Y as Gaussian target columns: itself if continuous, else one-hot minus one class."""
    if continuous_y is not None:
        return continuous_y.reshape(-1, 1)
    return np.eye(n_classes)[y_codes][:, :-1]


def _correlation(data: np.ndarray) -> np.ndarray:
    """Correlation matrix of the columns of ``data``, whatever their units.

    Every Gaussian information quantity is unchanged when a column is rescaled, so the
    measure works on correlations: nothing then depends on the units of a continuous
    target or of the projections, and the ridge is relative to each variance.  Columns
    are first divided by a power of two near their largest magnitude (exact), so that
    neither the mean nor the squares overflow or underflow.  An exactly constant column
    gets unit variance and no correlation: it carries no information.
    """
    data = np.array(data, dtype=np.float64)
    constant = np.ptp(data, axis=0) == 0
    peak = np.abs(data).max(axis=0)
    data /= np.where(peak > 0, np.ldexp(1.0, np.frexp(peak)[1] - 1), 1.0)
    data -= data.mean(axis=0)
    data[:, constant] = 0.0
    cov = np.atleast_2d(data.T @ data)
    sd = np.sqrt(np.diag(cov))
    sd[constant | (sd == 0)] = 1.0
    corr = cov / np.outer(sd, sd)
    corr[np.diag_indices_from(corr)] = 1.0 + GAUSSIAN_RIDGE
    return corr


def _gaussian_rows_pid(zt, zs, ymat, measure, base, rows=None, y_rows=None) -> PIDResult:
    if rows is not None:
        zt, zs, ymat = zt[rows], zs[rows], ymat[y_rows]
    n_sources = zt.shape[1] + zs.shape[1]
    # Constant target columns (classes absent from a resample) carry no information.
    target = np.ptp(ymat, axis=0) > 0
    if not target.any():
        zero = {name: 0.0 for name in QUANTITIES}
        return PIDResult(**zero, entropy_y=float("nan"), base=base,
                         measure=f"gaussian-{measure}")
    corr = _correlation(np.hstack([zt, zs, ymat[:, target]]))
    return gaussian_pid(corr, zt.shape[1], zs.shape[1], measure=measure, base=base)


def _check_gaussian_size(n_samples, n_teacher, n_student, n_target, warn) -> None:
    """Refuse a singular sample covariance; warn when noise alone reports much.

    With ``n_samples <= d`` for the ``d = n_teacher + n_student + n_target`` dimensions
    of (T, S, Y) the sample covariance is singular: the plug-in informations are
    infinite, and any finite value (13.7 bits from pure noise, before this check) would
    only reflect the ridge.  Above that, the plug-in estimate of I(Y;T,S) from
    independent data has a known mean (:func:`gaussian_noise_floor`); when it exceeds
    ``GAUSSIAN_NOISE_WARNING_BITS`` a ``UserWarning`` gives it.
    """
    dim = n_teacher + n_student + n_target
    if n_samples <= dim:
        most = (n_samples - 1 - n_target) // 2
        advice = (f"n_components <= {most}" if most >= 1
                  else f"at least {n_target + 3} samples")
        raise ValueError(
            f"measure='gaussian' needs more samples than dimensions: got n_samples="
            f"{n_samples}, but (T, S, Y) has {dim} dimensions ({n_teacher} teacher + "
            f"{n_student} student components + {n_target} target column(s)), so its sample "
            "covariance is singular and every information value would be an artefact. "
            f"Use {advice}, or more samples.")
    floor = gaussian_noise_floor(n_teacher + n_student, n_target, n_samples) / np.log(2)
    if warn and floor > GAUSSIAN_NOISE_WARNING_BITS:
        warnings.warn(
            f"measure='gaussian' with n_samples={n_samples} and {dim} dimensions "
            f"({n_teacher} + {n_student} components, {n_target} target column(s)): "
            f"independent data give I(Y;T,S) = {floor:.3g} bits on average (the plug-in "
            "estimate's upward bias), so the atoms are unreliable at this size. Use more "
            "samples, fewer n_components, or bias_correction='permutation'.",
            UserWarning, stacklevel=4)


class PIDEstimator(TransformerMixin, BaseEstimator):
    """Partial information decomposition of y into a teacher and a student representation.

    ``X`` holds the teacher's features and the student's features side by side (choose
    which columns are whose with ``teacher_columns`` / ``student_columns``).  ``fit``
    discretizes each block (the paper's flatten -> L2-normalise -> PCA -> KMeans by
    default) and computes the PID of the labels ``y`` from the plug-in joint of the codes,
    optionally bias-corrected and with bootstrap confidence intervals.  ``score`` gives
    one atom on new data with the fitted discretizers, so model selection tools can pick a
    representation or a setting by its PID.

    Parameters
    ----------
    teacher_columns, student_columns : None, int, array-like of int or str, slice, \
boolean mask or callable, default=None
        The columns of ``X`` of each representation (a callable gets ``X`` and returns one
        of the others; str selects by name when ``X`` is a DataFrame).  With both None
        the teacher is the first ``n_features // 2`` columns and the student the rest;
        with one None it is the complement of the other.  Overlapping selections give a
        ``UserWarning``.
    measure : {"broja", "mmi", "gaussian"}, default="broja"
        ``"broja"``: the exact BROJA PID of the discretized codes; ``"mmi"``:
        redundancy = min(I(Y;T), I(Y;S)) on the codes; ``"gaussian"``: no discretization,
        each block is projected to ``n_components`` principal components and
        (T, S, Y) is treated as jointly Gaussian (Y one-hot with one class dropped, or a
        continuous y as is), with the Gaussian BROJA measure (equal to MMI for a
        univariate target).  It sees only linear dependence, and for class labels its
        values are those of the Gaussian with the same covariance as
        (T, S, onehot(Y)): they are not bounded by the discrete H(Y).  See
        ``skpid._pid._gaussian``.  Sample size: with ``d`` the dimensions of (T, S, Y)
        (components of both blocks plus target columns), ``n_samples <= d`` raises a
        ``ValueError`` (the sample covariance is singular: pure noise would report
        unbounded information), and a ``UserWarning`` gives the mean value that
        independent data would report when it exceeds 0.05 bits (unless
        ``bias_correction="permutation"``, which subtracts it).
    discretizer : {"kmeans", "quantile", "passthrough"} or transformer, default="kmeans"
        ``"kmeans"``: :class:`KMeansDiscretizer` (``n_clusters``, ``n_components``);
        ``"quantile"``: :class:`QuantileDiscretizer` with ``n_bins=n_clusters`` on
        ``n_components`` components (``n_clusters ** n_components`` codes: keep
        ``n_components`` at 1 or 2); ``"passthrough"``: already discrete data.  A
        transformer instance is cloned for each block and must return one integer
        column.
    n_clusters : int, default=10
        Codes per block (reduced, with a warning, when a block has fewer distinct rows,
        e.g. on small data; a block whose rows are all identical warns that it is
        constant; single constant columns are harmless and pass silently).
    n_components : int, default=5
        Principal components per block (reduced to the block's rank bound when larger).
    normalize : bool, default=True
        L2-normalise rows before the PCA (as in the paper).  Either way the results do
        not depend on the units of ``X``: the same activations times any positive
        factor that keeps them finite give the same codes (all-zero rows share one).
    scoring : str, default="redundancy"
        What :meth:`score` returns: an atom (``"redundancy"``, ``"unique_teacher"``,
        ``"unique_student"``, ``"synergy"``) or a mutual information (``"mi_teacher"``,
        ``"mi_student"``, ``"mi_joint"``); prefix ``"neg_"`` to negate it, e.g.
        ``"neg_unique_teacher"`` to prefer students that leave little to distill.
    base : float, default=2
        Logarithm base (2: bits).
    bias_correction : {None, "permutation"}, default=None
        Subtract the mean PID of ``n_permutations`` label-permuted surrogates (corrected
        atoms clipped at 0, informations rebuilt from them); see ``skpid._sampling``.
    n_permutations : int, default=20
    n_bootstrap : int, default=0
        Number of bootstrap resamples for confidence intervals (0: none): the basic
        bootstrap interval of each quantity (as ``scipy.stats.bootstrap(...,
        method="basic")``, clipped at 0), of the reported, possibly bias-corrected,
        statistic; see ``skpid._sampling``.
    confidence : float, default=0.95
        Level of the bootstrap intervals.
    n_jobs : int or None, default=None
        Parallel jobs (joblib) for the surrogates and resamples.
    verbose : int, default=0
        joblib verbosity: > 0 prints progress of the surrogates and resamples.
    random_state : int, RandomState instance or None, default=None
        Seeds the discretizers, the permutations and the resamples.

    Attributes
    ----------
    result_ : PIDEstimate
        All atoms, informations, CIs (``ci``) and bias (``bias``) of the fit.
    redundancy_, unique_teacher_, unique_student_, synergy_ : float
        The atoms (after bias correction, if any).
    mi_teacher_, mi_student_, mi_joint_ : float
        I(Y;T), I(Y;S), I(Y;T,S).
    ci_ : dict or None
        ``{name: (low, high)}`` bootstrap intervals of the quantities above.
    teacher_transformer_, student_transformer_ : transformer
        The fitted discretizers (or Gaussian projections).
    teacher_columns_, student_columns_ : ndarray of int
        The resolved column indices.
    classes_ : ndarray
        The distinct labels seen in fit, sorted (None for a continuous y with
        ``measure="gaussian"``).  Labels are read by ``skpid._labels``: numbers,
        strings or other hashable values of one type; missing labels (NaN, None) and
        arrays mixing types (``[1, "1"]``) are refused, and torch tensors of any dtype
        and pandas Series are accepted.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string feature names.

    See Also
    --------
    score_representations : the same on two separate arrays of any shape.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import PIDEstimator
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, size=600)
    >>> teacher = np.eye(3)[y] + 0.1 * rng.normal(size=(600, 3))   # knows y
    >>> student = rng.normal(size=(600, 3))                           # knows nothing
    >>> est = PIDEstimator(n_clusters=3, n_components=2, random_state=0)
    >>> est = est.fit(np.hstack([teacher, student]), y)
    >>> round(est.mi_teacher_, 2), est.redundancy_ < 0.05
    (1.58, True)
    >>> est.transform(np.hstack([teacher, student])[:2]).shape
    (2, 2)
    """

    def __init__(self, teacher_columns=None, student_columns=None, *, measure="broja",
                 discretizer="kmeans", n_clusters=10, n_components=5, normalize=True,
                 scoring="redundancy", base=2, bias_correction=None, n_permutations=20,
                 n_bootstrap=0, confidence=0.95, n_jobs=None, verbose=0,
                 random_state=None):
        self.teacher_columns = teacher_columns
        self.student_columns = student_columns
        self.measure = measure
        self.discretizer = discretizer
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.normalize = normalize
        self.scoring = scoring
        self.base = base
        self.bias_correction = bias_correction
        self.n_permutations = n_permutations
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X, y):
        """Discretize both blocks and compute the PID of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Teacher and student features side by side.
        y : array-like, pandas Series or torch.Tensor of shape (n_samples,)
            Class labels (numbers, strings or other hashable values, of one type), or a
            continuous target with ``measure="gaussian"``.

        Returns
        -------
        self : PIDEstimator
        """
        self._check_params()
        X_in = X = tensor_to_numpy(X)
        if y is not None:  # (None: scikit-learn's own message, below)
            y = check_label_array(y, "y", allow_column=True)
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32],
                             ensure_min_samples=2)
        if X.shape[1] < 2:
            raise ValueError(f"X has {X.shape[1]} feature(s); PIDEstimator needs at least 2 "
                             "(a teacher and a student column).")
        self.teacher_columns_, self.student_columns_ = self._resolve_columns(X_in, X.shape[1])
        seed_t, seed_s, seed_sampling = fit_seeds(self.random_state)
        y_codes, continuous_y, _ = self._encode_target(y, fit=True)
        self.teacher_transformer_, zt = self._fit_block(
            seed_t, _columns(X, self.teacher_columns_), "teacher")
        self.student_transformer_, zs = self._fit_block(
            seed_s, _columns(X, self.student_columns_), "student")
        fn = self._pid_function(zt, zs, y_codes, continuous_y)
        self.result_ = estimate_pid(
            fn, X.shape[0], bias_correction=self.bias_correction,
            n_permutations=self.n_permutations, n_bootstrap=self.n_bootstrap,
            confidence=self.confidence, n_jobs=self.n_jobs, verbose=self.verbose,
            random_state=seed_sampling)
        for name in QUANTITIES:
            setattr(self, f"{name}_", getattr(self.result_, name))
        self.ci_ = self.result_.ci
        return self

    def _resolve_columns(self, X_in, n_features):
        names = getattr(self, "feature_names_in_", None)
        teacher = _select(self.teacher_columns, X_in, n_features, names, "teacher_columns")
        student = _select(self.student_columns, X_in, n_features, names, "student_columns")
        everything = np.arange(n_features)
        if teacher is None and student is None:
            teacher, student = everything[: n_features // 2], everything[n_features // 2:]
        elif teacher is None:
            teacher = np.setdiff1d(everything, student)
        elif student is None:
            student = np.setdiff1d(everything, teacher)
        for name, cols in (("teacher_columns", teacher), ("student_columns", student)):
            if len(cols) == 0:
                raise ValueError(f"{name} selects no columns of X (n_features={n_features}); "
                                 "each representation needs at least one column.")
        shared = np.intersect1d(teacher, student)
        if len(shared):
            warnings.warn(f"teacher_columns and student_columns overlap in {len(shared)} "
                          f"column(s) {shared[:10].tolist()}; the two representations share "
                          "those features.", UserWarning, stacklevel=3)
        return teacher, student

    def _check_params(self) -> None:
        """Validate the constructor parameters (called from fit, scikit-learn style)."""
        check_choice(self.measure, "measure", MEASURES)
        if isinstance(self.discretizer, str) or not (hasattr(self.discretizer, "fit")
                                                     and hasattr(self.discretizer, "transform")):
            check_choice(self.discretizer, "discretizer", DISCRETIZERS,
                         alternative="a transformer returning one code column")
        check_int(self.n_clusters, "n_clusters")
        check_int(self.n_components, "n_components")
        check_base(self.base)
        check_choice(self.scoring, "scoring", SCORINGS)
        check_choice(self.bias_correction, "bias_correction", BIAS_CORRECTIONS)
        check_int(self.n_permutations, "n_permutations")
        check_int(self.n_bootstrap, "n_bootstrap", minimum=0)
        check_real(self.confidence, "confidence", "a number in (0, 1)",
                   valid=lambda v: 0 < v < 1)

    def _make_block_transformer(self, seed):
        """A fresh (unfitted) discretizer or, for the Gaussian measure, projection."""
        if self.measure == "gaussian":
            pca = PCA(n_components=self.n_components, random_state=seed)
            # Unit-norm rows (or, without normalisation, rows divided by a power of two):
            # the PCA's squares then neither overflow nor underflow, whatever the units.
            proj = make_pipeline(RowScaler(normalize=self.normalize), pca)
            # Internal steps return arrays whatever the global set_output configuration.
            return proj.set_output(transform="default")
        if not isinstance(self.discretizer, str):
            disc = clone(self.discretizer)
            if "random_state" in disc.get_params():
                disc.set_params(random_state=seed)
            return disc.set_output(transform="default") if hasattr(disc, "set_output") else disc
        if self.discretizer == "kmeans":
            return KMeansDiscretizer(n_clusters=self.n_clusters,
                                     n_components=self.n_components,
                                     normalize=self.normalize, random_state=seed)
        if self.discretizer == "quantile":
            return QuantileDiscretizer(n_bins=max(self.n_clusters, 2),
                                       n_components=self.n_components, random_state=seed)
        return PassthroughDiscretizer()

    def _fit_block(self, seed, X, name):
        """Fit a fresh block transformer, naming the block in its warnings; return it and
        the transformed ``X`` (codes or projections)."""
        transformer = self._make_block_transformer(seed)
        if self.measure == "gaussian":
            pca = transformer.steps[-1][1] if hasattr(transformer, "steps") else transformer
            pca.set_params(n_components=min(pca.n_components, *X.shape))
        with named_warnings(f"{name} block"):
            with np.errstate(invalid="ignore", divide="ignore"):  # PCA of a constant block
                out = transformer.fit_transform(X)
        return transformer, np.asarray(out)

    def _encode_target(self, y, *, fit: bool) -> tuple:
        """``y`` as the PID sees it: ``(codes, continuous, extra)``.

        Class labels become their indices into ``classes_``, fitted here when ``fit``.
        When scoring, labels of the type seen in fit but not among ``classes_`` share one
        extra code ``len(classes_)`` (``extra`` is then 1, else 0), with a warning.  A
        continuous target (``measure="gaussian"`` only; ``classes_`` is None) is returned
        as a float64 column ``continuous``, with all-zero codes.
        """
        if fit:
            continuous = is_continuous(y)
            if continuous and self.measure != "gaussian":
                raise ValueError(f"y is continuous (non-integral values such as "
                                 f"{format_labels(y[y != np.round(y)][:3])}); the discrete "
                                 "measures need class labels. Use measure='gaussian' for a "
                                 "continuous target, or bin y.")
            if not continuous:
                self.classes_, codes = encode_labels(y, "y")
                if len(self.classes_) < 2:
                    warnings.warn(f"y has a single class {format_labels(self.classes_)}: "
                                  "H(Y) = 0, so every atom and information is 0.",
                                  UserWarning, stacklevel=3)
                return codes, None, 0
            self.classes_ = None
        if self.classes_ is None:
            if label_kind(y) != "number":
                raise ValueError(f"y must be numbers: the estimator was fitted on a "
                                 f"continuous target; got {format_labels(y[:3])}.")
            y = y.astype(np.float64)
            if fit and np.ptp(y) == 0:
                raise ValueError("y is constant; it carries no information to decompose.")
            return np.zeros(len(y), dtype=np.int64), y, 0
        n_classes = len(self.classes_)
        codes = transform_labels(y, self.classes_, "y", unseen="extra")
        unseen = codes == n_classes
        if unseen.all():
            raise ValueError(f"y holds none of the classes seen in fit: got "
                             f"{format_labels(y)}, the classes seen in fit are "
                             f"{format_labels(self.classes_)}.")
        if unseen.any():
            warnings.warn(f"y holds labels not seen in fit ({format_labels(y[unseen])}, "
                          f"{int(unseen.sum())} samples); they are scored as one extra "
                          f"class next to the classes seen in fit "
                          f"{format_labels(self.classes_)}.", UserWarning, stacklevel=3)
        return codes, None, int(unseen.any())

    def _pid_function(self, zt, zs, y_codes, continuous_y, extra_class=0):
        """``fn(rows, y_rows) -> PIDResult`` on transformed blocks (see estimate_pid)."""
        n_classes = (0 if self.classes_ is None else len(self.classes_)) + extra_class
        if self.measure == "gaussian":
            ymat = _target_matrix(y_codes, n_classes, continuous_y)
            n_target = int(np.count_nonzero(np.ptp(ymat, axis=0) > 0))
            if n_target:  # (no varying target: every quantity is 0, nothing to check)
                _check_gaussian_size(len(ymat), zt.shape[1], zs.shape[1], n_target,
                                     warn=self.bias_correction is None)
            return partial(_gaussian_rows_pid, zt, zs, ymat, "broja", float(self.base))
        t, s = compact_codes(_as_codes(zt)), compact_codes(_as_codes(zs))
        shape = (int(t.max()) + 1, int(s.max()) + 1, max(n_classes, 1))
        return partial(codes_pid, t, s, y_codes, shape, self.measure, float(self.base))

    # -- using the fit ---------------------------------------------------------------------
    def transform(self, X):
        """The y-free, row-wise view of ``X`` the PID was computed on.

        Discrete measures: the code of the teacher block and of the student block
        (``n_samples x 2`` integers).  ``measure="gaussian"``: the principal components of
        each block (teacher's first), of its unit-norm rows or, with ``normalize=False``,
        of its rows divided by a power of two fitted on the block (so that they do not
        depend on the units of ``X``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, 2) or (n_samples, n_components_t + n_components_s)
        """
        check_is_fitted(self)
        X = validate_data(self, tensor_to_numpy(X), reset=False,
                          dtype=[np.float64, np.float32])
        zt, zs = self._transform_blocks(X)
        if self.measure == "gaussian":
            return np.hstack([zt, zs])
        return np.column_stack([_as_codes(zt), _as_codes(zs)])

    def _transform_blocks(self, X):
        return (np.asarray(self.teacher_transformer_.transform(
                    _columns(X, self.teacher_columns_))),
                np.asarray(self.student_transformer_.transform(
                    _columns(X, self.student_columns_))))

    def get_feature_names_out(self, input_features=None):
        """Names of the columns of :meth:`transform`.

        Parameters
        ----------
        input_features : array-like of str or None
            Only checked against ``feature_names_in_``.

        Returns
        -------
        ndarray of str objects
            ``["teacher_code", "student_code"]``, or ``teacher_pc0, ..., student_pc0, ...``
            for the Gaussian measure.
        """
        check_is_fitted(self)
        # Only validates input_features (with scikit-learn's messages): the output
        # names do not depend on the input names.
        _check_feature_names_in(self, input_features)
        if self.measure != "gaussian":
            return np.asarray(["teacher_code", "student_code"], dtype=object)
        names = []
        for block, transformer in (("teacher", self.teacher_transformer_),
                                   ("student", self.student_transformer_)):
            pca = transformer.steps[-1][1] if hasattr(transformer, "steps") else transformer
            names += [f"{block}_pc{i}" for i in range(pca.n_components_)]
        return np.asarray(names, dtype=object)

    def score(self, X, y):
        """The ``scoring`` quantity of ``(X, y)`` with the fitted discretizers.

        Out of sample: the discretizers (and Gaussian projections) are not refitted.
        Labels of the type seen in fit but not among ``classes_`` form one extra class
        (with a ``UserWarning`` naming them).  The bias correction of the fit is applied;
        no bootstrap.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels of the type used in fit.

        Returns
        -------
        score : float

        Raises
        ------
        ValueError
            If ``y`` holds labels of another type than ``classes_`` (e.g. strings after a
            fit on integers), or none of the classes seen in fit.
        """
        check_is_fitted(self)
        y = check_label_array(y, "y", allow_column=True)
        X, y = validate_data(self, tensor_to_numpy(X), y, reset=False,
                             dtype=[np.float64, np.float32], ensure_min_samples=2)
        zt, zs = self._transform_blocks(X)
        y_codes, continuous_y, extra = self._encode_target(y, fit=False)
        fn = self._pid_function(zt, zs, y_codes, continuous_y, extra)
        result = estimate_pid(fn, X.shape[0], bias_correction=self.bias_correction,
                              n_permutations=self.n_permutations, n_jobs=self.n_jobs,
                              random_state=self.random_state)
        name = self.scoring.removeprefix("neg_")
        value = float(getattr(result, name))
        return -value if self.scoring.startswith("neg_") else value

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        # transform returns integer codes, whatever the input dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags


def _select(spec, X_in, n_features, names, param):
    """Column indices chosen by ``spec`` (see PIDEstimator), or None for None."""
    if callable(spec):
        spec = spec(X_in)
    if spec is None:
        return None
    if isinstance(spec, slice):
        return np.arange(n_features)[spec]
    arr = np.atleast_1d(np.asarray(spec))
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype == bool:
        if arr.shape != (n_features,):
            raise ValueError(f"{param} as a boolean mask must have length n_features="
                             f"{n_features}; got shape {arr.shape}.")
        return np.flatnonzero(arr)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.max() >= n_features or arr.min() < -n_features):
            raise ValueError(f"{param} holds column indices out of range for "
                             f"n_features={n_features}: {arr.tolist()[:10]}.")
        return np.unique(arr % n_features)
    if arr.dtype.kind in "OUS":
        if names is None:
            raise ValueError(f"{param} selects columns by name, but X has no feature "
                             "names (pass a pandas DataFrame).")
        lookup = {name: i for i, name in enumerate(names)}
        missing = [c for c in arr.tolist() if c not in lookup]
        if missing:
            raise ValueError(f"{param} names columns not in X: {missing[:10]}.")
        return np.unique([lookup[c] for c in arr.tolist()])
    raise TypeError(f"{param} must be None, an int, a slice, a boolean mask, column indices "
                    f"or names, or a callable; got {type(spec).__name__}.")


def _check_block(X, name):
    """A 2-D float array from a representation of any trailing shape."""
    X = tensor_to_numpy(X)
    if hasattr(X, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array (.toarray()).")
    X = np.asarray(flatten_samples(X))
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {X.dtype}.")
    if X.ndim < 2:
        raise ValueError(f"{name} must have shape (n_samples, ...) with at least one "
                         f"feature per sample; got shape {X.shape}.")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinity; remove or impute those samples.")
    return X


def check_triple(teacher, student, y, chunk=None) -> tuple:
    """Teacher and student as 2-D float arrays and y as a 1-D array, of one length.

    ``chunk`` (an index) names the chunk of a stream they are, in the errors.
    """
    where = "" if chunk is None else f" chunk {chunk}"
    T = _check_block(teacher, f"teacher{where}")
    S = _check_block(student, f"student{where}")
    y = check_label_array(y, f"y{where}")
    check_n_samples({"teacher": len(T), "student": len(S), "y": len(y)},
                    "" if chunk is None else f"chunk {chunk}: ")
    return T, S, y


def check_n_samples(lengths: dict, prefix: str = "") -> int:
    """The common number of samples of paired arrays (``{"teacher": n_t, "student": n_s,
    "y": n_y}``); a ``ValueError`` (its message starting with ``prefix``) if they differ."""
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{prefix}teacher, student and y must have the same number of "
                         f"samples; got {lengths}.")
    return next(iter(lengths.values()))


def score_representations(teacher, student, y, *, n_clusters: int = 10,
                          n_components: int = 5, measure: str = "broja",
                          random_state=None, discretizer="kmeans", normalize: bool = True,
                          base: float = 2, bias_correction=None, n_permutations: int = 20,
                          n_bootstrap: int = 0, confidence: float = 0.95, n_jobs=None,
                          verbose: int = 0) -> PIDEstimate:
    """PID of y into a teacher and a student representation, each of any shape.

    A functional shortcut for :class:`PIDEstimator` on two separate arrays: each is
    flattened to ``(n_samples, -1)``, discretized on its own (paper pipeline by default)
    and the PID of the plug-in joint is returned.

    Parameters
    ----------
    teacher, student : array-like or torch.Tensor of shape (n_samples, ...)
        Activations, e.g. ``(N, D)`` or ``(N, C, H, W)``; tensors are detached and
        copied to the CPU.
    y : array-like, pandas Series or torch.Tensor of shape (n_samples,)
        Class labels of one type (see :class:`PIDEstimator`'s ``classes_``).
    n_clusters, n_components, measure, random_state, discretizer, normalize, base, \
bias_correction, n_permutations, n_bootstrap, confidence, n_jobs, verbose
        As in :class:`PIDEstimator`.

    Returns
    -------
    PIDEstimate
        A :class:`PIDResult` with ``ci`` (bootstrap intervals, if ``n_bootstrap > 0``),
        ``bias`` and ``n_samples``.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import score_representations
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, size=400)
    >>> teacher = (2 * y - 1)[:, None, None] + 0.1 * rng.normal(size=(400, 4, 4))
    >>> r = score_representations(teacher, teacher.copy(), y, n_clusters=2,
    ...                           random_state=0)
    >>> round(r.redundancy / r.entropy_y, 3), round(r.unique_teacher, 3)  # all of H(Y)
    (1.0, 0.0)
    """
    T, S, y_arr = check_triple(teacher, student, y)
    est = PIDEstimator(teacher_columns=slice(0, T.shape[1]),
                       student_columns=slice(T.shape[1], T.shape[1] + S.shape[1]),
                       measure=measure, discretizer=discretizer, n_clusters=n_clusters,
                       n_components=n_components, normalize=normalize, base=base,
                       bias_correction=bias_correction, n_permutations=n_permutations,
                       n_bootstrap=n_bootstrap, confidence=confidence, n_jobs=n_jobs,
                       verbose=verbose, random_state=random_state)
    dtype = np.result_type(T.dtype, S.dtype, np.float32)
    return est.fit(np.hstack([T.astype(dtype, copy=False), S.astype(dtype, copy=False)]),
                   y_arr).result_


def score_layers(pairs, y, *, n_jobs=None, **kwargs):
    """:func:`score_representations` of several (teacher layer, student layer) pairs.

    Parameters
    ----------
    pairs : dict of name -> (teacher, student), or sequence of (teacher, student)
        Activations of matched layers.
    y : array-like of shape (n_samples,)
    n_jobs : int or None, default=None
        Pairs scored in parallel (joblib); each pair runs single-threaded.
    **kwargs
        Passed to :func:`score_representations` (``random_state`` is used for every
        pair, so pairs are scored with the same seeds).

    Returns
    -------
    dict of name -> PIDEstimate, or list of PIDEstimate
        Same container type as ``pairs``.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import score_layers
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, size=300)
    >>> good, noise = (2 * y - 1)[:, None] + 0.1 * rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    >>> out = score_layers({"fc": (good, good), "noise": (good, noise)}, y,
    ...                    n_clusters=2, random_state=0)
    >>> out["fc"].redundancy > 0.9 > out["noise"].redundancy
    True
    """
    y = check_label_array(y, "y")  # once, before any pair is scored
    named = isinstance(pairs, dict)
    items = list(pairs.items()) if named else list(enumerate(pairs))
    for key, pair in items:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"pairs[{key!r}] must be a (teacher, student) pair; got "
                             f"{type(pair).__name__}.")
    results = Parallel(n_jobs=n_jobs)(
        delayed(score_representations)(t, s, y, n_jobs=1, **kwargs) for _, (t, s) in items)
    return dict(zip((k for k, _ in items), results)) if named else results
