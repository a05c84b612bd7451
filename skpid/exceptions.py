"""Warnings raised by skpid."""

from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning


class ConvergenceWarning(_SklearnConvergenceWarning):
    """A solver stopped before certifying its tolerance, or produced an out-of-range value.

    A subclass of scikit-learn's ``sklearn.exceptions.ConvergenceWarning`` (itself a
    ``UserWarning``), so that filters set for scikit-learn's warning, e.g.
    ``warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)``, apply to
    skpid's too.
    """


class NuisanceTeacherWarning(UserWarning):
    """A teacher representation holds no measurable task information (I(Y;T) is
    indistinguishable from 0): distilling it can only cost the student accuracy.

    Issued by :class:`~skpid.PIDDistiller` with ``teacher_check="warn"`` (the default);
    ``teacher_check="raise"`` raises a ``ValueError`` with the same message instead.
    """
