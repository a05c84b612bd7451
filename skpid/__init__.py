"""skpid: measure and perform knowledge distillation with partial information decomposition."""

from ._discretize import KMeansDiscretizer, PassthroughDiscretizer, QuantileDiscretizer
from ._estimator import PIDEstimator, score_layers, score_representations
from ._pid import PIDResult, pid, pid_from_counts, pid_from_pmf
from ._sampling import PIDEstimate
from ._streaming import ChunkedKMeansDiscretizer, score_chunks

__version__ = "0.1.0"

__all__ = [
    "AcceleratedPIDDistiller",
    "ChunkedKMeansDiscretizer",
    "KMeansDiscretizer",
    "PIDDistiller",
    "PIDEstimate",
    "PIDEstimator",
    "PIDMonitor",
    "PIDResult",
    "PassthroughDiscretizer",
    "QuantileDiscretizer",
    "__version__",
    "pid",
    "pid_from_counts",
    "pid_from_pmf",
    "plot_pid_history",
    "score_chunks",
    "score_layers",
    "score_representations",
]


def __getattr__(name):
    # The distillation half needs torch and skorch: import it on first use so that
    # ``import skpid`` (the PID core and estimators) stays light.
    if name in ("AcceleratedPIDDistiller", "PIDDistiller", "PIDMonitor",
                "plot_pid_history"):
        from . import distill
        return getattr(distill, name)
    raise AttributeError(f"module 'skpid' has no attribute {name!r}")
