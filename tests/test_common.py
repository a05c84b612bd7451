"""scikit-learn's estimator checks, in full, plus the set_output / feature-name checks."""

import pytest
from sklearn.utils.estimator_checks import (
    check_global_output_transform_pandas,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)

from skpid import (ChunkedKMeansDiscretizer, KMeansDiscretizer, PassthroughDiscretizer,
                   PIDEstimator, QuantileDiscretizer)

ESTIMATORS = [
    PIDEstimator(),
    PIDEstimator(measure="mmi", discretizer="quantile", n_components=1),
    PIDEstimator(measure="gaussian", n_components=2),
    KMeansDiscretizer(),
    QuantileDiscretizer(),
    PassthroughDiscretizer(),
    ChunkedKMeansDiscretizer(),
    # Several chunks and a full sample, so that the streamed paths run.
    ChunkedKMeansDiscretizer(sample_size=12, chunk_size=7),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


EXTRA_CHECKS = [check_set_output_transform, check_transformer_get_feature_names_out]
PANDAS_CHECKS = [check_set_output_transform_pandas, check_global_output_transform_pandas,
                 check_transformer_get_feature_names_out_pandas]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: repr(e))
@pytest.mark.parametrize("check", EXTRA_CHECKS + PANDAS_CHECKS, ids=lambda c: c.__name__)
def test_output_and_feature_name_checks(estimator, check):
    if check in PANDAS_CHECKS:
        pytest.importorskip("pandas")
    check(type(estimator).__name__, estimator)
