"""Warnings raised by skpid."""


class ConvergenceWarning(UserWarning):
    """A solver stopped before certifying its tolerance, or produced an out-of-range value."""
