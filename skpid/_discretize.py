"""Discretizers: from activations of any shape to one integer code per sample.

Each is a scikit-learn transformer usable on its own.  ``transform`` returns an integer
array of shape ``(n_samples, 1)`` holding the code of every row; ``n_codes_`` is the number
of codes a fitted discretizer can emit.  Inputs with more than two dimensions
(``(N, C, H, W)`` conv maps, ``(N, L, D)`` token activations) are flattened to
``(N, -1)`` first.
"""

import math
import warnings

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.utils.extmath import randomized_svd, svd_flip
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from ._arrays import to_numpy as tensor_to_numpy  # the package's one conversion
from ._validation import check_int


def flatten_samples(X):
    """``X`` reshaped to ``(n_samples, -1)`` when it has more than two dimensions.

    Two-dimensional inputs (arrays, DataFrames, lists) pass through untouched so that
    scikit-learn's validation still sees feature names and dtypes; torch tensors become
    numpy arrays (:func:`tensor_to_numpy`).
    """
    X = tensor_to_numpy(X)
    if hasattr(X, "ndim") and hasattr(X, "reshape") and not hasattr(X, "tocsr"):
        return X.reshape(X.shape[0], -1) if X.ndim > 2 else X
    if isinstance(X, (list, tuple)):
        arr = np.asarray(X)
        return arr.reshape(arr.shape[0], -1) if arr.ndim > 2 else X
    return X


# Up to this many dimensions on the smaller side, the PCA goes through a Gram matrix and a
# partial symmetric eigensolver; beyond, a randomized SVD.
GRAM_LIMIT = 2048


def fit_projection(X: np.ndarray, n_components: int, random_state):
    """Mean and top ``n_components`` principal axes (rows) of ``X``.

    For ``min(n_samples, n_features) <= GRAM_LIMIT`` (e.g. 10,000 x 512): one Gram matrix
    product and only the top eigenpairs of it (:func:`top_eigenvectors`), both on one
    BLAS thread.  Threads gain little at this size and are pathological on a busy
    machine: on a loaded 2-core machine a full 512 x 512 eigendecomposition with threads
    took 2.2 s against 0.02 s for the partial one on one thread, and the 10,000 x 512
    Gram product 0.13-0.39 s against 0.05 s.  Otherwise (very wide and long inputs) a
    seeded randomized SVD with the caller's threading.  Signs are fixed by
    :func:`flip_signs` so results are deterministic.
    """
    mean = X.mean(axis=0)
    Xc = X - mean
    n, d = Xc.shape
    if min(n, d) <= GRAM_LIMIT:
        small = d <= n
        with serial_threads():
            gram = Xc.T @ Xc if small else Xc @ Xc.T
        vectors = top_eigenvectors(gram, n_components)
        if small:
            axes = vectors
        else:  # right singular vectors from the left ones
            axes = Xc.T @ vectors.T
            norms = np.linalg.norm(axes, axis=0)
            axes = (axes / np.where(norms > 0, norms, 1.0)).T
    else:
        _, _, axes = randomized_svd(Xc, n_components, random_state=random_state)
    return mean, flip_signs(axes)


def top_eigenvectors(gram: np.ndarray, n_components: int) -> np.ndarray:
    """The eigenvectors (rows) of the ``n_components`` largest eigenvalues of a symmetric
    matrix, largest first.

    Only those eigenpairs are computed, on one BLAS thread (see :func:`fit_projection`
    for why).  Also used on the streamed scatter matrix of ``skpid._streaming``.
    """
    m = gram.shape[0]
    with serial_threads():
        _, vectors = scipy.linalg.eigh(gram, subset_by_index=[m - n_components, m - 1])
    return vectors[:, ::-1].T


def flip_signs(axes: np.ndarray) -> np.ndarray:
    """``axes`` (rows) with each sign flipped so that its largest loading is positive.

    Eigenvectors and singular vectors are defined up to sign; fixing it makes projections,
    hence codes, deterministic across solvers and runs.  This is scikit-learn's
    :func:`~sklearn.utils.extmath.svd_flip` convention for the rows of ``Vt``
    (``u_based_decision=False``, as its ``PCA`` uses), applied to a copy: ``svd_flip``
    works in place and ``axes`` may be a view of a solver's output.  The copy keeps the
    memory order of ``axes`` (``order="K"``), so that later products see the same layout.
    """
    return svd_flip(None, axes.copy(order="K"), u_based_decision=False)[1]


_CONTROLLER = []


def serial_threads():
    """Context running small OpenMP / BLAS work (KMeans, small eigensolves) on one thread.

    KMeans here clusters ``n_components``-dimensional points (5 by default): too little
    work per iteration for threads to pay off, and waiting threads make it pathological
    on a busy machine (measured on a loaded 2-core machine: 0.43 s with two threads vs
    0.003 s with one, for 800 x 5 points).  Large products elsewhere keep their threads.
    """
    if not _CONTROLLER:  # created lazily: inspecting the loaded libraries takes ms
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


CONSTANT = "X is constant: every row is the same, so it carries no information"


def _warn_constant(detail: str = "") -> None:
    warnings.warn(f"{CONSTANT}{detail}.", UserWarning, stacklevel=3)


def _varies(z: np.ndarray) -> bool:
    """Whether a projected component varies beyond the PCA's round-off."""
    return bool(np.ptp(z) > 1e-10 * max(1.0, float(np.abs(z).max())))


def _count_distinct_rows(Z: np.ndarray, enough: int) -> int:
    """The number of distinct rows of ``Z``, or any number >= ``enough`` when there are
    at least that many (rows that differ in their first column are distinct: counting
    those is a 1-D sort, 50 times cheaper than sorting whole rows at 10,000 x 5)."""
    if Z.ndim == 2 and Z.shape[1] and len(np.unique(Z[:, 0])) >= enough:
        return enough
    return len(np.unique(Z, axis=0))


def normalizes(enabled: bool, n_features: int) -> bool:
    """Whether rows are scaled to unit norm: asked for, and more than one column (a single
    column's unit-norm version keeps only its sign, so it is left as is)."""
    return bool(enabled) and n_features > 1


def normalize_rows(X: np.ndarray, enabled: bool) -> np.ndarray:
    """Rows of ``X`` scaled to unit L2 norm when ``enabled`` (all-zero rows stay zero).

    Scale-invariant over the whole finite range of the dtype: each row is first divided
    by its largest absolute entry, so that the squares summed for its norm lie in [0, 1]
    and can neither overflow (float32 entries beyond about 1e19, float64 beyond 1e154)
    nor underflow to zero (below 1e-19 / 1e-154).  scikit-learn's ``normalize`` squares
    the raw entries and, besides, leaves rows whose norm is below 10 machine epsilons
    (1.2e-6 in float32, 2.2e-15 in float64) unscaled, taking them for zero rows: that
    made the codes, hence every score, depend on the units of the activations.  Rows
    that are exactly zero stay zero (they have no direction): all of them share one
    point, hence one code, deterministically.
    """
    if not normalizes(enabled, X.shape[1]):
        return X
    # max |x| without an |X| temporary; plain divisions where no row is zero (masked
    # ones, ``where=``, cost twice as much): the same values bit for bit.
    peak = np.maximum(X.max(axis=1, initial=-np.inf), -X.min(axis=1, initial=np.inf))[:, None]
    if np.all(peak > 0):
        out = X / peak
    else:
        out = np.divide(X, peak, out=np.zeros_like(X), where=peak > 0)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]  # in [1, sqrt(d)], or 0
    if np.all(norms > 0):
        out /= norms
        return out
    return np.divide(out, norms, out=out, where=norms > 0)


def power_of_two_scale(X: np.ndarray) -> float:
    """The largest power of two not above ``max |X|`` (1.0 for an all-zero ``X``).

    Dividing by it brings the entries into (-2, 2) exactly (a power of two only shifts
    exponents), so the squares and products of the PCA and KMeans that follow neither
    overflow nor underflow, whatever the units of ``X``, and data that differ by a power
    of two give bit-identical codes.
    """
    peak = float(np.max(np.abs(X))) if X.size else 0.0
    if not 0 < peak < np.inf:
        return 1.0
    # frexp: peak = m * 2**e with 0.5 <= m < 1, so 2**(e - 1) <= peak (and is finite
    # even for peak near the largest float, where 2**e would overflow).
    return float(np.ldexp(1.0, np.frexp(peak)[1] - 1))


def fit_row_scale(Z: np.ndarray, normalized: bool) -> float:
    """The ``scale_`` a discretizer divides its (normalised) rows by: 1 for unit-norm rows
    (already in [-1, 1]), else the power of two of :func:`power_of_two_scale`."""
    return 1.0 if normalized else power_of_two_scale(Z)


def prepare_rows(X: np.ndarray, normalize: bool, scale: float) -> np.ndarray:
    """Rows as the PCA sees them: normalised when asked for, then divided by ``scale``."""
    Z = normalize_rows(X, normalize)
    return Z if scale == 1.0 else Z / scale


def check_kmeans_params(n_clusters, n_components, n_init) -> tuple:
    """The parameters of the KMeans pipeline, validated: ``(n_clusters, n_components,
    n_init)`` as ints."""
    return (check_int(n_clusters, "n_clusters"), check_int(n_components, "n_components"),
            check_int(n_init, "n_init"))


def project(X: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of ``X`` on the principal axes ``components`` (rows).

    On one BLAS thread: a product with a handful of columns reads ``X`` once and is
    bound by memory, so threads do not speed it up, while OpenBLAS's idle threads then
    spin for a while after it, costing CPU time that other work on the machine needs
    (measured for ``score_representations`` on 10,000 x 512 activations: 0.40 s of CPU
    time for 0.21 s of wall time with a threaded product, 0.23-0.25 s without, same wall
    time).
    """
    centred = X - mean
    with serial_threads():
        return centred @ components.T


def fit_kmeans(Z: np.ndarray, n_clusters: int, n_init: int, random_state,
               stacklevel: int = 1):
    """Seeded KMeans of projected rows on one thread; returns it and the clusters used.

    When ``Z`` has fewer distinct rows than ``n_clusters``, a ``UserWarning`` says so and
    that many clusters are used (KMeans would fail otherwise).  ``stacklevel`` is the
    caller's, as for :func:`warnings.warn`.
    """
    n_distinct = _count_distinct_rows(Z, n_clusters)
    if n_distinct < n_clusters:
        what = CONSTANT if n_distinct == 1 else f"X has only {n_distinct} distinct rows"
        warnings.warn(f"n_clusters={n_clusters} is more than the number of distinct rows: "
                      f"{what}; using n_clusters={n_distinct}.", UserWarning,
                      stacklevel=stacklevel + 1)
        n_clusters = n_distinct
    with serial_threads():
        kmeans = KMeans(n_clusters=n_clusters, n_init=n_init,
                        random_state=random_state).fit(Z)
    return kmeans, n_clusters


class _BaseDiscretizer(TransformerMixin, BaseEstimator):
    """Shared plumbing: flattening, validation, one output column of codes."""

    def _validate(self, X, reset: bool) -> np.ndarray:
        X = flatten_samples(X)
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32],
                             ensure_min_samples=2 if reset else 1)

    def _project(self, X):
        """Coordinates of the rows of ``X`` on the fitted principal axes."""
        return project(X, self.mean_, self.components_)

    def _prepare(self, X):
        """Validated rows as the fitted PCA sees them (see :func:`prepare_rows`)."""
        return prepare_rows(X, getattr(self, "normalize", False), self.scale_)

    def get_feature_names_out(self, input_features=None):
        """One output column: ``["<classname>_code"]``.

        Parameters
        ----------
        input_features : array-like of str or None
            Ignored except for the usual consistency check with ``feature_names_in_``.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray([f"{type(self).__name__.lower()}_code"], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The output is integer codes, whatever the input dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags


class _BaseKMeansDiscretizer(_BaseDiscretizer):
    """Shared by the KMeans discretizers, in memory and streamed: the code of a row."""

    def _codes(self, X) -> np.ndarray:
        """The cluster (int64) of every row of ``X``: validation, row normalisation,
        projection on the fitted axes, nearest centre."""
        X = self._validate(X, reset=False)
        Z = self._project(self._prepare(X))
        with serial_threads():
            return self.kmeans_.predict(Z).astype(np.int64)


class KMeansDiscretizer(_BaseKMeansDiscretizer):
    """The paper's discretizer: flatten, L2-normalise rows, PCA, then KMeans.

    Dissanayake et al. (2025) discretize each representation this way before estimating
    PID; here every step is seeded, and the PCA computes only the leading components
    (see :func:`fit_projection`).

    Parameters
    ----------
    n_clusters : int, default=10
        Number of KMeans clusters, i.e. of codes.  If the projected data has fewer
        distinct rows, a ``UserWarning`` is issued and that smaller number is used
        (``n_clusters_``).
    n_components : int, default=5
        Number of principal components kept; reduced to
        ``min(n_components, n_samples, n_features)`` when larger (``n_components_``).
    normalize : bool, default=True
        Scale every row to unit L2 norm before the PCA, as in the paper.  All-zero rows
        stay zero (they share one code); a one-column input is not normalised (only its
        sign would remain).  Codes do not depend on the units of ``X``: the same data
        times any positive factor that keeps it finite gives the same codes (see
        :func:`normalize_rows`; without normalisation rows are divided by ``scale_``).
    n_init : int, default=1
        Number of KMeans initialisations (k-means++).
    random_state : int, RandomState instance or None, default=None
        Seeds KMeans (and the randomized SVD used on very wide inputs).

    Attributes
    ----------
    scale_ : float
        Power of two the (normalised) rows are divided by before the PCA, so that no
        square overflows or underflows whatever the units of ``X``: 1.0 for unit-norm
        rows, else the largest power of two not above ``max |X|`` seen in fit.
    mean_ : ndarray of shape (`n_features_in_`,)
    components_ : ndarray of shape (`n_components_`, `n_features_in_`)
        The principal axes (of the normalised, scaled rows), largest variance first.
    kmeans_ : KMeans
        The fitted clustering.
    n_clusters_ : int
        Number of clusters actually used.
    n_components_ : int
        Number of principal components actually used.
    n_codes_ : int
        Number of codes ``transform`` can return (``n_clusters_``).
    n_features_in_ : int
        Number of (flattened) features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import KMeansDiscretizer
    >>> X = np.random.default_rng(0).normal(size=(100, 3, 4, 4))  # (N, C, H, W)
    >>> codes = KMeansDiscretizer(n_clusters=4, random_state=0).fit_transform(X)
    >>> codes.shape, sorted(np.unique(codes).tolist())
    ((100, 1), [0, 1, 2, 3])
    """

    def __init__(self, n_clusters=10, n_components=5, *, normalize=True, n_init=1,
                 random_state=None):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.normalize = normalize
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the projection and the clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Activations; trailing dimensions are flattened.
        y : None
            Ignored.

        Returns
        -------
        self : KMeansDiscretizer
        """
        n_clusters, n_components, n_init = check_kmeans_params(
            self.n_clusters, self.n_components, self.n_init)
        X = self._validate(X, reset=True)
        Z = normalize_rows(X, self.normalize)
        self.scale_ = fit_row_scale(Z, normalizes(self.normalize, X.shape[1]))
        Z = Z / self.scale_
        self.n_components_ = min(n_components, X.shape[0], X.shape[1])
        self.mean_, self.components_ = fit_projection(Z, self.n_components_,
                                                      self.random_state)
        self.kmeans_, self.n_clusters_ = fit_kmeans(self._project(Z), n_clusters, n_init,
                                                    self.random_state, stacklevel=2)
        self.n_codes_ = self.n_clusters_
        return self

    def fit_transform(self, X, y=None):
        """Fit, and return the cluster of every row of ``X``.

        Same result as ``fit(X).transform(X)``, without projecting ``X`` twice.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : None
            Ignored.

        Returns
        -------
        codes : ndarray of shape (n_samples, 1), dtype int64
        """
        # KMeans ends with an assignment step, so labels_ are predict's answers.
        return self.fit(X).kmeans_.labels_.astype(np.int64)[:, None]

    def transform(self, X):
        """The cluster of every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        codes : ndarray of shape (n_samples, 1), dtype int64
        """
        check_is_fitted(self)
        return self._codes(X)[:, None]


# The most codes a QuantileDiscretizer may have (int32 indexes; a PID table over them
# would not fit in memory long before that).
MAX_CODES = 2 ** 31 - 1


class QuantileDiscretizer(_BaseDiscretizer):
    """Quantile bins of a low-dimensional PCA projection.

    Rows are projected on the first ``n_components`` principal components; each component
    is cut at its empirical quantiles into ``n_bins`` bins, and the bin indices combine
    into one code (``n_bins ** n_components`` codes, so keep ``n_components`` small).

    Parameters
    ----------
    n_bins : int, default=4
        Bins per component (fewer where a component has fewer distinct quantiles).
    n_components : int, default=1
        Number of principal components binned; reduced to
        ``min(n_components, n_samples, n_features)`` when larger.
    random_state : int, RandomState instance or None, default=None
        Seeds the randomized SVD used on very wide inputs.

    Attributes
    ----------
    scale_ : float
        The largest power of two not above ``max |X|`` seen in fit: rows are divided by
        it before the PCA, so that the codes do not depend on the units of ``X`` (no
        square overflows or underflows, and the test for a constant component is
        relative).
    mean_ : ndarray of shape (`n_features_in_`,)
        Mean of the scaled rows.
    components_ : ndarray of shape (`n_components_`, `n_features_in_`)
        The principal axes, largest variance first.
    bin_edges_ : list of ndarray
        Interior bin edges of every component (in units of the scaled rows).
    n_components_ : int
    n_codes_ : int
        Number of codes ``transform`` can return.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import QuantileDiscretizer
    >>> X = np.random.default_rng(0).normal(size=(1000, 8))
    >>> codes = QuantileDiscretizer(n_bins=4).fit_transform(X)
    >>> np.bincount(codes.ravel()).tolist()
    [250, 250, 250, 250]
    """

    def __init__(self, n_bins=4, n_components=1, *, random_state=None):
        self.n_bins = n_bins
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the projection and the bin edges.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : None
            Ignored.

        Returns
        -------
        self : QuantileDiscretizer
        """
        n_bins = check_int(self.n_bins, "n_bins", minimum=2)
        n_components = check_int(self.n_components, "n_components")
        X = self._validate(X, reset=True)
        self.scale_ = power_of_two_scale(X)
        X = X / self.scale_
        self.n_components_ = min(n_components, X.shape[0], X.shape[1])
        self.mean_, self.components_ = fit_projection(X, self.n_components_,
                                                      self.random_state)
        Z = self._project(X)
        # Interior quantiles, merged where ties make them coincide (constant components
        # get a single bin).
        levels = np.linspace(0, 1, n_bins + 1)[1:-1]
        self.bin_edges_ = [np.unique(np.quantile(z, levels)) if _varies(z) else np.empty(0)
                           for z in Z.T]
        self._shape = tuple(len(edges) + 1 for edges in self.bin_edges_)
        n_codes = math.prod(self._shape)  # exact: numpy's product would overflow
        if n_codes > MAX_CODES:
            raise ValueError(
                f"n_components={n_components} with n_bins={n_bins} gives {n_codes:.3g} "
                f"codes (bins per component {' x '.join(map(str, self._shape))}), more "
                f"than {MAX_CODES:,} that a code can index; the codes grow as n_bins ** "
                "n_components: use fewer components (a few at most) or fewer bins.")
        self.n_codes_ = n_codes
        if self.n_codes_ == 1:
            _warn_constant("; all rows get code 0")
        return self

    def transform(self, X):
        """The combined bin index of every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        codes : ndarray of shape (n_samples, 1), dtype int64
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        Z = self._project(self._prepare(X))
        bins = tuple(np.searchsorted(edges, z, side="right")
                     for edges, z in zip(self.bin_edges_, Z.T))
        return np.ravel_multi_index(bins, self._shape).astype(np.int64)[:, None]


class PassthroughDiscretizer(_BaseDiscretizer):
    """Codes for data that is already discrete: one code per distinct row.

    Rows not seen during ``fit`` get the extra code ``n_codes_ - 1`` (all unseen rows
    share it), so out-of-sample scoring never fails on new values.

    Attributes
    ----------
    categories_ : ndarray of shape (`n_distinct_rows`, `n_features_in_`)
        The distinct rows seen in fit, sorted; row ``i`` gets code ``i``.
    n_codes_ : int
        ``len(categories_) + 1`` (the last code is "unseen").
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)

    Examples
    --------
    >>> from skpid import PassthroughDiscretizer
    >>> d = PassthroughDiscretizer().fit([[0, 1], [1, 1], [0, 1]])
    >>> d.transform([[1, 1], [0, 1], [5, 5]]).ravel().tolist()
    [1, 0, 2]
    """

    def fit(self, X, y=None):
        """Record the distinct rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : None
            Ignored.

        Returns
        -------
        self : PassthroughDiscretizer
        """
        X = self._validate(X, reset=True)
        self.categories_ = np.unique(X, axis=0)
        self.n_codes_ = len(self.categories_) + 1
        if len(self.categories_) == 1:
            _warn_constant()
        return self

    def transform(self, X):
        """The code of every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        codes : ndarray of shape (n_samples, 1), dtype int64
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False).astype(self.categories_.dtype, copy=False)
        # Rows as single opaque items make one vectorised sorted search possible; byte
        # order differs from numeric order, hence the extra argsort.
        cats, rows = _as_void(self.categories_), _as_void(X)
        order = np.argsort(cats)
        pos = np.minimum(np.searchsorted(cats[order], rows), len(cats) - 1)
        found = cats[order][pos] == rows
        return np.where(found, order[pos], len(cats)).astype(np.int64)[:, None]


def _as_void(a: np.ndarray) -> np.ndarray:
    """Each row of a 2-D array as one comparable scalar (raw bytes, C order)."""
    a = np.ascontiguousarray(a)
    # +0.0 makes -0.0 and 0.0 the same bytes.
    a = a + 0.0 if a.dtype.kind == "f" else a
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


class RowScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Rows as the PCA of the discretizers sees them, as a transformer of its own.

    ``normalize=True``: unit-norm rows (:func:`normalize_rows`, safe over the whole float
    range); otherwise, or for a single column, rows divided by the power of two
    ``scale_`` fitted on ``X`` (:func:`power_of_two_scale`).  Used before the PCA of the
    Gaussian measure, so that it too does not depend on the units of the activations.

    Parameters
    ----------
    normalize : bool, default=True

    Attributes
    ----------
    scale_ : float
    n_features_in_ : int
    """

    def __init__(self, normalize=True):
        self.normalize = normalize

    def fit(self, X, y=None):
        """Fit ``scale_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : RowScaler
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self.scale_ = fit_row_scale(normalize_rows(X, self.normalize),
                                    normalizes(self.normalize, X.shape[1]))
        return self

    def transform(self, X):
        """The normalised (or scaled) rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return prepare_rows(X, self.normalize, self.scale_)
