"""Discrete and closed-form PID (pure numpy/scipy)."""

from ._core import pid, pid_from_counts, pid_from_pmf
from ._result import PIDResult

__all__ = ["PIDResult", "pid", "pid_from_counts", "pid_from_pmf"]
