"""Grid search over PIDDistiller candidates on a Dask cluster (joblib's Dask backend)."""

import joblib
import numpy as np
import torch
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV

from skpid import PIDDistiller
from skpid.distill.models import MLP


def test_dask_local_cluster_search_equals_serial_search(digits):
    X, y = digits
    torch.manual_seed(0)
    teacher = MLP(64, hidden=32)
    net = PIDDistiller(MLP, teacher, method="rid", module__hidden=8,
                       teacher_layers=["body"], student_layers=["body"], random_state=0,
                       max_epochs=10, batch_size=32, lr=0.2, train_split=None, verbose=0)
    grid = {"pid_weight": [0.0, 0.5, 2.0], "method": ["vid", "rid"]}
    serial = GridSearchCV(net, grid, cv=2).fit(X, y)

    # Worker processes on the loopback interface only; closed by the context managers.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
            on_dask = GridSearchCV(net, grid, cv=2, n_jobs=-1).fit(X, y)
        n_workers_used = len({t["worker"] for t in tasks.data})
    assert n_workers_used >= 1 and len(tasks.data) > 0  # the fits ran on the cluster

    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(on_dask.cv_results_[key], serial.cv_results_[key])
    assert on_dask.best_params_ == serial.best_params_
    # the refit best candidate is the same model
    np.testing.assert_array_equal(on_dask.predict_proba(X), serial.predict_proba(X))
    # every candidate learned something, so equal scores are not trivially equal
    assert np.all(serial.cv_results_["mean_test_score"] > 0.5)
