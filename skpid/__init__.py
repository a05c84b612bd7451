"""skpid: measure and perform knowledge distillation with partial information decomposition."""

from ._pid import PIDResult, pid, pid_from_counts, pid_from_pmf

__version__ = "0.1.0"

__all__ = ["PIDResult", "__version__", "pid", "pid_from_counts", "pid_from_pmf"]
