"""Discretization and PID scoring of activation sets too large to hold in memory.

:class:`ChunkedKMeansDiscretizer` runs the paper's pipeline (flatten, L2-normalise rows,
PCA, KMeans) over row chunks, so that its memory is bounded by
``O(chunk_size * d + sample_size * d + d**2)`` whatever the number of rows ``N``:

* the PCA is exact: the mean and the scatter matrix (sum of outer products of the centred
  rows) of *all* rows are accumulated chunk by chunk in float64 with Chan, Golub and
  LeVeque's pairwise update, then the leading eigenvectors of the d x d scatter matrix
  are the principal axes;
* KMeans is fitted on a uniform sample of at most ``sample_size`` rows, kept with
  Vitter's reservoir Algorithm R; every row then gets the code of its nearest centre.

A fit in progress (those moments and that sample) is a :class:`StreamedFit`; a fitted
discretizer keeps only its result, unless ``partial_fit`` is to extend it.

:func:`score_chunks` uses two of them to compute the PID of labels into a teacher and a
student representation that are read twice, chunk by chunk: a first pass fits both
discretizers, a second assigns codes and counts the (teacher code, student code, class)
table.  With ``sample_size >= N`` the sample is all rows in order and both give the codes
(and the PID) of their in-memory counterparts, :class:`~skpid.KMeansDiscretizer` and
:func:`~skpid.score_representations`, up to round-off.
"""

import warnings
from contextlib import contextmanager
from functools import partial

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from ._discretize import (_BaseKMeansDiscretizer, check_kmeans_params, fit_kmeans,
                          flatten_samples, flip_signs, normalize_rows, normalizes, project,
                          power_of_two_scale, serial_threads, top_eigenvectors)
from ._estimator import check_n_samples, check_triple, fit_seeds, named_warnings
from ._labels import fit_labels, format_labels, is_continuous, transform_labels
from ._validation import PID_MEASURES, check_base, check_choice, check_int
from ._sampling import PIDEstimate, counts_pid, draw_seeds, estimate_pid, joint_counts


# -- building blocks -------------------------------------------------------------------------
def iter_row_chunks(X, chunk_size: int):
    """Consecutive blocks of at most ``chunk_size`` rows of ``X``, never all of ``X`` at once.

    Anything with ``.shape`` and slicing (ndarray, ``np.memmap``, torch tensor, h5py
    dataset; a DataFrame through ``.iloc``) is sliced; other array-likes (lists) are
    converted first, as they are in memory already.  An empty ``X`` gives one empty block,
    and a sparse matrix or a scalar is given whole, so that validation rejects them in
    scikit-learn's usual words.
    """
    if hasattr(X, "tocsr"):
        yield X
        return
    if not (hasattr(X, "shape") and hasattr(X, "__getitem__")):
        X = np.asarray(X)
    if len(X.shape) == 0:
        yield X
        return
    rows = X.iloc if hasattr(X, "iloc") else X
    for start in range(0, max(X.shape[0], 1), chunk_size):
        yield rows[start:start + chunk_size]


def merge_moments(n: int, mean, scatter, rows) -> tuple:
    """Count, mean and scatter matrix of the rows seen so far extended by ``rows``.

    ``scatter`` is the sum of the outer products of the centred rows (``n - 1`` times the
    covariance), in float64; ``mean`` and ``scatter`` are None while ``n == 0``.  Chan,
    Golub and LeVeque's pairwise update adds the block's scatter about its own mean and a
    correction for the distance between the two means.  Accumulating ``X^T X`` and
    subtracting ``n * mean mean^T`` at the end would instead cancel catastrophically when
    the rows share a large common offset.  The inputs are not modified.
    """
    centred = np.array(rows, dtype=np.float64)  # a copy: centred in place below
    n_block = centred.shape[0]
    if n_block == 0:
        return n, mean, scatter
    block_mean = centred.mean(axis=0)
    centred -= block_mean
    with serial_threads():  # see fit_projection: a chunk's Gram product is small work
        block_scatter = centred.T @ centred
    if n == 0:
        return n_block, block_mean, block_scatter
    total = n + n_block
    delta = block_mean - mean
    block_scatter += np.outer(delta, delta * (n * n_block / total))
    return total, mean + delta * (n_block / total), scatter + block_scatter


def reservoir_update(sample, n_seen: int, rows: np.ndarray, capacity: int, rng):
    """Algorithm R (Vitter, 1985) applied to a block of rows at once.

    ``sample`` is a uniform sample without replacement of ``min(n_seen, capacity)`` of the
    ``n_seen`` rows before ``rows`` (None when ``n_seen == 0``); the returned array is one
    of all ``n_seen + len(rows)`` rows.  Until ``capacity`` rows have been seen the
    sample is every row, in order.  ``rng`` (a numpy ``Generator``) is only used once the
    sample is full.  ``sample`` may be modified in place.
    """
    n_fill = min(len(rows), max(capacity - n_seen, 0))
    if n_fill:
        head = rows[:n_fill]
        sample = (np.array(head) if sample is None
                  else np.concatenate([sample, head], dtype=sample.dtype))
    if n_fill < len(rows):
        # The row of (0-based) stream index i takes slot j ~ U{0, ..., i} when j < capacity,
        # which keeps every row seen with the same probability capacity / (i + 1).
        index = np.arange(n_seen + n_fill, n_seen + len(rows))
        slots = rng.integers(0, index + 1)
        hits = np.flatnonzero(slots < capacity)
        replace_rows(sample, slots[hits], rows[n_fill:][hits])
    return sample


def replace_rows(sample: np.ndarray, slots: np.ndarray, rows: np.ndarray) -> None:
    """``sample[slots] = rows`` in place, the last row aimed at a slot winning.

    That is what processing the rows one by one does; NumPy leaves the outcome of
    repeated indices in one fancy assignment unspecified, so only the last is assigned.
    """
    _, first_from_end = np.unique(slots[::-1], return_index=True)
    last = len(slots) - 1 - first_from_end
    sample[slots[last]] = rows[last]


# -- the discretizer -------------------------------------------------------------------------
class StreamedFit:
    """A fit of a :class:`ChunkedKMeansDiscretizer` in progress, fed chunk by chunk.

    It holds what the fit accumulates: the count, mean and scatter matrix of the
    (normalised) rows seen (float64, :func:`merge_moments`), a uniform sample of at most
    ``sample_size`` of them (:func:`reservoir_update`) and the power of two they are divided
    by.  :meth:`add` validates chunks against the discretizer and accumulates them;
    :meth:`finish` fits the discretizer from what was accumulated: principal axes of the
    scatter matrix, then KMeans on the projected sample.

    The discretizer's ``fit`` and ``partial_fit`` drive their fits through it, and so does
    :func:`score_chunks`, which feeds two discretizers from one stream, chunk by chunk, and
    finishes each once.  It is also the state that ``partial_fit`` keeps between calls:
    ``(sample_size + d) * d`` numbers for ``d`` features.

    Parameters
    ----------
    disc : ChunkedKMeansDiscretizer
        The discretizer to fit; its parameters are validated here.
    """

    def __init__(self, disc):
        self.disc = disc
        self.check_params()
        self.n_seen, self.mean, self.scatter, self.sample = 0, None, None, None
        # Read once: the sample cannot change size in the middle of a fit, nor can the
        # rows seen so far change from normalised to raw (check_params refuses that).
        self.capacity = int(disc.sample_size)
        self.normalize = disc.normalize
        self.rng = None
        self.scale = 1.0

    def check_params(self) -> None:
        """Validate the discretizer's parameters (before any chunk is read)."""
        disc = self.disc
        n_clusters = check_kmeans_params(disc.n_clusters, disc.n_components, disc.n_init)[0]
        check_int(disc.chunk_size, "chunk_size")
        sample_size = check_int(disc.sample_size, "sample_size")
        if sample_size < n_clusters:
            raise ValueError(f"sample_size={sample_size} is smaller than n_clusters="
                             f"{n_clusters}: KMeans needs at least n_clusters sample rows.")
        started = getattr(self, "normalize", disc.normalize)
        if disc.normalize != started:
            raise ValueError(
                f"normalize={disc.normalize!r}, but this fit started with normalize="
                f"{started!r}: the rows seen so far cannot be mixed with rows prepared "
                "otherwise. Start a new fit (fit, or partial_fit on a new estimator).")

    def add(self, X):
        """Add the rows of ``X`` to the moments and the sample, one chunk at a time.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        self : StreamedFit
        """
        disc = self.disc
        for chunk in iter_row_chunks(X, int(disc.chunk_size)):
            if self.n_seen and len(chunk) == 0:
                continue  # an empty chunk adds nothing (as score_chunks skips it)
            # The first chunk of a fit (re)sets n_features_in_ and feature names; the
            # others are checked against them.
            chunk = validate_data(disc, flatten_samples(chunk), reset=self.n_seen == 0,
                                  dtype=[np.float64, np.float32])
            Z = normalize_rows(chunk, disc.normalize)
            if not normalizes(disc.normalize, Z.shape[1]):
                Z = self._rescale(Z)
            if self.rng is None and self.n_seen + len(Z) > self.capacity:
                # Created only once the sample is full, so that with sample_size >= N a
                # RandomState instance reaches KMeans as KMeansDiscretizer leaves it.
                self.rng = np.random.default_rng(draw_seeds(disc.random_state, 1)[0])
            self.sample = reservoir_update(self.sample, self.n_seen, Z, self.capacity,
                                           self.rng)
            self.n_seen, self.mean, self.scatter = merge_moments(
                self.n_seen, self.mean, self.scatter, Z)
        return self

    def _rescale(self, Z: np.ndarray) -> np.ndarray:
        """Rows kept in their own units, divided by the running power-of-two scale.

        The scale is that of :class:`~skpid.KMeansDiscretizer` (the largest power of two
        not above the largest ``|X|`` so far), so no square of the moments overflows or
        underflows; when a chunk raises it, the moments and the sample gathered so far
        are rescaled by the (exact, power-of-two) ratio, which leaves them as if every
        row had been divided by the final scale.
        """
        scale = power_of_two_scale(Z)
        if self.n_seen == 0:
            self.scale = scale
        elif scale > self.scale:
            ratio = self.scale / scale
            self.mean = self.mean * ratio
            self.scatter = self.scatter * ratio * ratio
            self.sample = self.sample * ratio
            self.scale = scale
        return Z / self.scale

    def finish(self, stacklevel: int = 1):
        """Fit the discretizer: principal axes of the scatter matrix, then KMeans on the
        projected sample.  More chunks may be added afterwards and the fit finished again.

        Parameters
        ----------
        stacklevel : int, default=1
            Of a warning about too few distinct rows, counted from the caller of this
            method, as for :func:`warnings.warn`.

        Returns
        -------
        disc : ChunkedKMeansDiscretizer
            The fitted discretizer.
        """
        disc, n = self.disc, self.n_seen
        if n < 2:
            raise ValueError(f"{type(disc).__name__} needs at least 2 samples to fit; got "
                             f"{n} sample{'' if n == 1 else 's'}.")
        disc.n_components_ = min(int(disc.n_components), n, disc.n_features_in_)
        disc.scale_ = self.scale
        disc.mean_ = self.mean
        disc.components_ = flip_signs(top_eigenvectors(self.scatter, disc.n_components_))
        disc.kmeans_, disc.n_clusters_ = fit_kmeans(
            project(self.sample, disc.mean_, disc.components_), int(disc.n_clusters),
            int(disc.n_init), disc.random_state, stacklevel=stacklevel + 1)
        disc.n_codes_ = disc.n_clusters_
        disc.n_samples_seen_ = n
        return disc


class ChunkedKMeansDiscretizer(_BaseKMeansDiscretizer):
    """The paper's discretizer in bounded memory: streamed PCA, KMeans on a row sample.

    Same pipeline and parameters as :class:`~skpid.KMeansDiscretizer` (flatten,
    L2-normalise rows, PCA, KMeans), fitted over blocks of ``chunk_size`` rows so that
    an ``np.memmap`` (or anything with ``.shape`` and slicing) is never loaded whole:

    * the PCA is exact: the mean and covariance of all (normalised) rows are accumulated
      in float64 and the principal axes are the leading eigenvectors of the covariance;
    * KMeans is fitted on a uniform random sample of at most ``sample_size`` rows
      (reservoir sampling); ``transform`` then gives every row its nearest centre.

    Memory while fitting is ``O(chunk_size * d + sample_size * d + d**2)`` for ``d``
    features, independent of the number of rows: e.g. about 200 MB for ``d = 512`` with
    the defaults.  The d x d covariance makes it unsuitable for very wide inputs (``d`` of
    tens of thousands: 8 d**2 bytes).  A fitted discretizer is small (see Notes).  With
    ``sample_size`` at least the number of rows, the sample is all rows in order and the
    codes are those of ``KMeansDiscretizer`` with the same seed, up to round-off.

    Parameters
    ----------
    n_clusters, n_components, normalize, n_init
        As in :class:`~skpid.KMeansDiscretizer` (10 codes, 5 components, unit-norm rows,
        one KMeans initialisation by default); ``n_clusters`` is reduced, with a
        warning, when the projected sample has fewer distinct rows.
    sample_size : int, default=20000
        At most this many rows (a uniform sample) are kept for KMeans while fitting; at
        least ``n_clusters``.  Read when a fit starts (``fit``, or the first call of
        ``partial_fit``).
    chunk_size : int, default=10000
        Rows processed at a time by ``fit``, ``partial_fit`` and ``transform``.
    random_state : int, RandomState instance or None, default=None
        Seeds KMeans and the row sample.

    Attributes
    ----------
    scale_ : float
        Power of two the (normalised) rows are divided by, as in
        :class:`~skpid.KMeansDiscretizer`: 1.0 for unit-norm rows, else the largest
        power of two not above the largest ``|X|`` seen.
    mean_ : ndarray of shape (`n_features_in_`,)
        Mean of the (normalised, scaled) rows, float64.
    components_ : ndarray of shape (`n_components_`, `n_features_in_`)
        The principal axes, largest variance first, float64.
    kmeans_ : KMeans
        The clustering of the projected sample.
    n_clusters_ : int
        Number of clusters actually used.
    n_components_ : int
        Number of principal components actually used.
    n_codes_ : int
        Number of codes ``transform`` can return (``n_clusters_``).
    n_features_in_ : int
        Number of (flattened) features.
    n_samples_seen_ : int
        Number of rows the fit is based on (all calls of ``partial_fit`` together).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string feature names.

    See Also
    --------
    KMeansDiscretizer : the same on data held in memory.
    score_chunks : the PID of two streamed representations.

    Notes
    -----
    What a fitted discretizer keeps (in memory and in pickles):

    * after :meth:`fit`, only what :meth:`transform` needs: the axes, the mean and the
      KMeans centres, ``O(n_components * d)`` numbers (under 1 MB at ``d = 512``).  The
      row sample and the d x d scatter matrix (40 to 80 MB at ``d = 512`` with the
      defaults) are dropped at the end of ``fit``, so a later :meth:`partial_fit` cannot
      extend its fit and starts a new one, with a ``UserWarning``;
    * after :meth:`partial_fit`, also the row sample and the scatter matrix, which the
      next call extends.  They travel with a pickle, so a streamed fit can be saved and
      resumed; a call of :meth:`fit` drops them.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import ChunkedKMeansDiscretizer
    >>> X = np.random.default_rng(0).normal(size=(5000, 2, 4, 4)).astype(np.float32)
    >>> disc = ChunkedKMeansDiscretizer(n_clusters=4, sample_size=1000, chunk_size=1000,
    ...                                 random_state=0).fit(X)
    >>> disc.n_samples_seen_, disc.n_features_in_, disc.transform(X[:3]).shape
    (5000, 32, (3, 1))
    """

    def __init__(self, n_clusters=10, n_components=5, *, normalize=True, n_init=1,
                 sample_size=20000, chunk_size=10000, random_state=None):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.normalize = normalize
        self.n_init = n_init
        self.sample_size = sample_size
        self.chunk_size = chunk_size
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the projection on all rows and the clustering on a sample, chunk by chunk.

        Keeps only what :meth:`transform` needs (see Notes): a later
        :meth:`partial_fit` starts a new fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Activations, e.g. an ``np.memmap``; sliced ``chunk_size`` rows at a time and
            trailing dimensions flattened.
        y : None
            Ignored.

        Returns
        -------
        self : ChunkedKMeansDiscretizer
        """
        streamed = StreamedFit(self)
        vars(self).pop("_streamed_fit", None)  # a fit starts over: earlier rows are gone
        return streamed.add(X).finish(stacklevel=2)

    def partial_fit(self, X, y=None):
        """Add the rows of ``X`` to the fit of the earlier calls of ``partial_fit``.

        The first call starts a new fit, and so does a call after :meth:`fit` (with a
        ``UserWarning``): ``fit`` does not keep the state a fit is extended from (see
        Notes).  The estimator is usable after every call: each one ends with a small
        eigensolve (``n_components`` eigenpairs of the d x d scatter matrix) and a KMeans
        fit on the sample, so call it with large blocks.  The first call needs at least 2
        rows (a refused call keeps none of its rows); later calls may bring any number,
        none included.  Settings that change what was accumulated (``normalize``) cannot
        change between calls.

        Parameters
        ----------
        X : array-like of shape (n_chunk_samples, ...)
        y : None
            Ignored.

        Returns
        -------
        self : ChunkedKMeansDiscretizer
        """
        streamed = getattr(self, "_streamed_fit", None)
        if streamed is None:
            if hasattr(self, "n_samples_seen_"):
                warnings.warn(f"partial_fit after fit starts a new fit: fit keeps only what "
                              f"transform needs, not the row sample and scatter matrix a "
                              f"fit is extended from, so the {self.n_samples_seen_} rows "
                              "of fit are not part of it. To fit in several calls, call "
                              "partial_fit from the start.", UserWarning, stacklevel=2)
            # kept only once the call succeeds: a refused first call leaves no rows behind
            streamed = StreamedFit(self)
            fitted = streamed.add(X).finish(stacklevel=2)
            self._streamed_fit = streamed
            return fitted
        streamed.check_params()
        return streamed.add(X).finish(stacklevel=2)

    def transform(self, X):
        """The cluster of every row, ``chunk_size`` rows at a time.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        codes : ndarray of shape (n_samples, 1), dtype int64
        """
        check_is_fitted(self)
        chunk_size = check_int(self.chunk_size, "chunk_size")
        codes = [self._codes(chunk) for chunk in iter_row_chunks(X, chunk_size)]
        return np.concatenate(codes)[:, None]


# -- scoring -----------------------------------------------------------------------------------
def score_chunks(chunks, *, n_clusters: int = 10, n_components: int = 5,
                 normalize: bool = True, sample_size: int = 20000, chunk_size: int = 10000,
                 measure: str = "broja", base: float = 2,
                 random_state=None) -> PIDEstimate:
    """PID of y into a teacher and a student representation read chunk by chunk.

    For activation sets too large to hold (e.g. 1M x 512 per model): the data is read in
    two passes and never held whole.  Pass 1 fits a :class:`ChunkedKMeansDiscretizer` per
    representation (exact PCA of all rows, KMeans on a uniform sample of ``sample_size``
    rows) and collects the classes; pass 2 assigns every row its teacher and student
    code and counts the (teacher code, student code, class) table, whose plug-in PID is
    returned.  Memory is ``O(chunk_size * d + sample_size * d + d**2)`` per
    representation, independent of the number of rows.

    With ``sample_size`` at least the number of rows, the result is that of
    :func:`score_representations` with the same settings and ``random_state`` on the
    arrays held in memory, up to round-off.

    Parameters
    ----------
    chunks : callable or tuple (teacher, student, y)
        Either a callable returning a *fresh* iterable of ``(teacher_chunk,
        student_chunk, y_chunk)`` triples each time it is called (it is called twice, and
        must yield the same rows in the same order both times), or a tuple of three
        array-likes of the same length (e.g. ``np.memmap`` or ``np.load(...,
        mmap_mode="r")`` arrays), read ``chunk_size`` rows at a time.  Representation
        chunks have shape ``(n_rows, ...)`` (trailing dimensions are flattened; torch
        tensors are copied to the CPU); label chunks hold class labels of any sortable
        type.
    n_clusters, n_components, normalize : int, int, bool
        As in :func:`score_representations`.
    sample_size : int, default=20000
        Rows per representation kept for KMeans (see :class:`ChunkedKMeansDiscretizer`).
    chunk_size : int, default=10000
        Rows processed at a time (and the block size when ``chunks`` is a tuple).
    measure : {"broja", "mmi"}, default="broja"
    base : float, default=2
        Logarithm base (2: bits).
    random_state : int, RandomState instance or None, default=None
        Seeds both discretizers (drawn as :func:`score_representations` draws them).

    Returns
    -------
    PIDEstimate
        The plug-in PID, with ``n_samples`` rows (no bias correction or intervals: those
        need the codes of every row in memory; see :func:`score_representations`).

    See Also
    --------
    score_representations : the same on arrays held in memory, with bias correction and
        bootstrap intervals.

    Examples
    --------
    >>> import numpy as np
    >>> from skpid import score_chunks
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, size=4000)
    >>> teacher = (2 * y - 1)[:, None] + 0.1 * rng.normal(size=(4000, 8))  # knows y
    >>> student = rng.normal(size=(4000, 8))                                # knows nothing
    >>> r = score_chunks((teacher, student, y), n_clusters=2, sample_size=1000,
    ...                  chunk_size=1000, random_state=0)
    >>> round(r.mi_teacher, 3), r.mi_student < 0.01, r.n_samples
    (1.0, True, 4000)
    """
    check_choice(measure, "measure", PID_MEASURES)
    base = check_base(base)
    stream = _as_stream(chunks, check_int(chunk_size, "chunk_size"))
    # The seeds of score_representations' discretizers, so that both give the same codes
    # when the sample is every row.
    seed_t, seed_s, _ = fit_seeds(random_state)
    fits = {name: StreamedFit(ChunkedKMeansDiscretizer(
                n_clusters, n_components, normalize=normalize, sample_size=sample_size,
                chunk_size=chunk_size, random_state=seed))
            for name, seed in (("teacher", seed_t), ("student", seed_s))}

    n_rows, classes = _fit_pass(stream(), fits)
    blocks = {}
    for name, streamed in fits.items():
        with named_warnings(f"{name} block"):
            blocks[name] = streamed.finish(stacklevel=2)
    del fits, streamed  # the samples and scatter matrices: only the codes are needed now
    if len(classes) < 2:
        warnings.warn(f"y has a single class {format_labels(classes)}: H(Y) = 0, so every "
                      "atom and information is 0.", UserWarning, stacklevel=2)
    counts, n_second = _count_pass(stream(), blocks, classes)
    if n_second != n_rows:
        raise ValueError(f"the second pass over chunks yielded {n_second} rows, the first "
                         f"{n_rows}; chunks() must return a fresh iterable of the same data "
                         "each time it is called.")
    return estimate_pid(partial(counts_pid, counts, measure, base), n_rows)


def _fit_pass(chunks, fits: dict) -> tuple:
    """Pass 1: moments and samples of both representations (``fits``: name ->
    :class:`StreamedFit`), and the sorted classes; returns the number of rows and the
    classes."""
    n_rows, classes = 0, None
    for i, (teacher, student, y) in _triples(chunks):
        for name, block in (("teacher", teacher), ("student", student)):
            with _naming_errors(f"{name} chunk {i}"):
                fits[name].add(block)
        with _naming_errors(f"y chunk {i}"):
            if is_continuous(y):
                raise ValueError("continuous values; score_chunks needs class labels (bin "
                                 "y first).")
            # Labels of another type than earlier chunks' are refused (merging numbers
            # with strings would silently turn the numbers into strings).
            classes = fit_labels(y, "y", classes=classes)
        n_rows += len(y)
    if n_rows < 2:
        raise ValueError(f"chunks yielded {n_rows} sample{'' if n_rows == 1 else 's'}; the "
                         "PID needs at least 2.")
    return n_rows, classes


def _count_pass(chunks, blocks: dict, classes: np.ndarray) -> tuple:
    """Pass 2: the (teacher code, student code, class) counts and the number of rows."""
    counts = np.zeros((blocks["teacher"].n_codes_, blocks["student"].n_codes_, len(classes)))
    n_rows = 0
    for i, (teacher, student, y) in _triples(chunks):
        codes = {}
        for name, block in (("teacher", teacher), ("student", student)):
            with _naming_errors(f"{name} chunk {i}"):
                codes[name] = blocks[name].transform(block)[:, 0]
        with _naming_errors(f"y chunk {i}"):
            y_codes = transform_labels(y, classes, "y", unseen="extra")
            if np.any(y_codes == len(classes)):
                raise ValueError("the second pass yields labels the first did not; chunks() "
                                 "must yield the same data each time.")
        counts += joint_counts(codes["teacher"], codes["student"], y_codes, counts.shape)
        n_rows += len(y)
    return counts, n_rows


def _as_stream(chunks, chunk_size: int):
    """A callable returning a fresh iterable of (teacher, student, y) chunks."""
    if callable(chunks):
        return chunks
    if not isinstance(chunks, tuple):
        raise TypeError("chunks must be a callable returning an iterable of (teacher, "
                        "student, y) chunks, or a tuple (teacher, student, y) of arrays; "
                        f"got {type(chunks).__name__}.  For a list of chunks pass "
                        "`lambda: chunk_list`.")
    if len(chunks) != 3:
        raise ValueError("chunks as a tuple must be (teacher, student, y); got a tuple of "
                         f"{len(chunks)}.")
    n = check_n_samples({name: _n_rows(a, name)
                         for name, a in zip(("teacher", "student", "y"), chunks)})

    def slices():
        for start in range(0, n, chunk_size):
            yield tuple(_rows(a, start, start + chunk_size) for a in chunks)

    return slices


def _n_rows(a, name: str) -> int:
    shape = getattr(a, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    try:
        return len(a)
    except TypeError:
        raise TypeError(f"{name} must be an array-like of shape (n_samples, ...); got "
                        f"{type(a).__name__}.") from None


def _rows(a, start: int, stop: int):
    return (a.iloc if hasattr(a, "iloc") else a)[start:stop]


def _triples(iterable):
    """``(index, (teacher, student, y))`` of every non-empty chunk, checked."""
    for i, item in enumerate(iterable):
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise ValueError(f"chunks must yield (teacher, student, y) triples; chunk {i} is "
                             f"a {type(item).__name__}"
                             f"{f' of length {len(item)}' if hasattr(item, '__len__') else ''}.")
        teacher, student, y = check_triple(*item, chunk=i)
        if len(y):
            yield i, (teacher, student, y)


@contextmanager
def _naming_errors(label: str):
    """Prefix the message of a ValueError or TypeError raised inside with ``label``, so
    that an error deep in validation says which representation and chunk it is about."""
    try:
        yield
    except (ValueError, TypeError) as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"{label}: {error}") from error
