"""skpid: measure and perform knowledge distillation with partial information decomposition."""

from ._pid import PIDResult, pid, pid_from_counts, pid_from_pmf

__version__ = "0.1.0"

__all__ = ["PIDDistiller", "PIDResult", "__version__", "pid", "pid_from_counts", "pid_from_pmf"]


def __getattr__(name):
    # The distillation half needs torch and skorch: import it on first use so that
    # ``import skpid`` (the PID core) stays light.
    if name in ("PIDDistiller", "PIDMonitor"):
        from . import distill
        return getattr(distill, name)
    raise AttributeError(f"module 'skpid' has no attribute {name!r}")
