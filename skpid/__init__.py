"""skpid: measure and perform knowledge distillation with partial information decomposition."""

from ._discretize import KMeansDiscretizer, PassthroughDiscretizer, QuantileDiscretizer
from ._estimator import PIDEstimator, score_layers, score_representations
from ._pid import PIDResult, pid, pid_from_counts, pid_from_pmf
from ._sampling import PIDEstimate

__version__ = "0.1.0"

__all__ = [
    "KMeansDiscretizer",
    "PIDEstimate",
    "PIDEstimator",
    "PIDResult",
    "PassthroughDiscretizer",
    "QuantileDiscretizer",
    "__version__",
    "pid",
    "pid_from_counts",
    "pid_from_pmf",
    "score_layers",
    "score_representations",
]
